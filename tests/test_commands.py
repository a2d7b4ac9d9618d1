"""``manage.py inngest_sync``. (``inngest_cancel`` is covered by tests/test_cancellation.py.)"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from django_inngest import Context, Event, Inngest, TriggerEvent
from django_inngest.models import FunctionRegistration, FunctionRun
from django_inngest.registry import registry

pytestmark = pytest.mark.django_db

#: What autodiscovery found at startup (tests/testapp/inngest_functions.py).
DISCOVERED = sorted(f.id for f in registry.all())


def handler(ctx: Context) -> None:
    return None


def sync() -> str:
    out = StringIO()
    call_command("inngest_sync", stdout=out)
    return out.getvalue()


def test_inngest_sync_creates_rows_for_the_real_registry() -> None:
    FunctionRegistration.objects.all().delete()
    output = sync()
    assert f"Synced {len(DISCOVERED)} active function(s); deactivated 0." in output
    assert sorted(FunctionRegistration.objects.values_list("function_id", "is_active")) == [
        (function_id, True) for function_id in DISCOVERED
    ]
    row = FunctionRegistration.objects.get(function_id="testapp-hello")
    assert row.config == {
        "id": "testapp-hello",
        "name": "hello",
        "triggers": [{"event": "testapp/hello"}],
        "steps": {"step": {"retries": {"attempts": 4}}},
    }


def test_inngest_sync_updates_existing_rows() -> None:
    FunctionRegistration.objects.filter(function_id="testapp-hello").update(
        name="stale", config={}, is_active=False
    )
    output = sync()
    assert f"Synced {len(DISCOVERED)} active function(s)" in output
    row = FunctionRegistration.objects.get(function_id="testapp-hello")
    assert (row.name, row.is_active) == ("hello", True)
    assert row.config["triggers"] == [{"event": "testapp/hello"}]
    assert FunctionRegistration.objects.filter(function_id="testapp-hello").count() == 1


def test_inngest_sync_deactivates_functions_removed_from_code_and_keeps_their_runs() -> None:
    with registry.isolated():
        client = Inngest(app_id="shop")
        client.create_function(fn_id="old", trigger=TriggerEvent(event="shop/old"))(handler)
        client.create_function(fn_id="kept", trigger=TriggerEvent(event="shop/kept"))(handler)
        client.send_sync(Event(name="shop/old"))
        (run,) = FunctionRun.objects.filter(function_id="shop-old")

        # The discovered functions are not in the isolated registry: deactivated.
        assert f"Synced 2 active function(s); deactivated {len(DISCOVERED)}." in sync()
        client.registry.unregister("shop-old")
        assert "Synced 1 active function(s); deactivated 1." in sync()

        active = dict(FunctionRegistration.objects.values_list("function_id", "is_active"))
        assert active == {
            "shop-old": False,
            "shop-kept": True,
            **dict.fromkeys(DISCOVERED, False),
        }
        assert FunctionRun.objects.filter(pk=run.pk, function_id="shop-old").exists()

    # Back with the real registry: the discovered functions are active again, shop ones not.
    assert f"Synced {len(DISCOVERED)} active function(s); deactivated 1." in sync()
    active = dict(FunctionRegistration.objects.values_list("function_id", "is_active"))
    assert active == {"shop-old": False, "shop-kept": False, **dict.fromkeys(DISCOVERED, True)}
