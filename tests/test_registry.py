"""The function registry, autodiscovery, and ``FunctionRegistration`` sync."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management.sql import emit_post_migrate_signal
from django.test import override_settings

import tests.portapp
import tests.testapp
from django_inngest import Context, Event, Inngest, TriggerEvent
from django_inngest.definitions import Cancel
from django_inngest.exceptions import FunctionAlreadyRegisteredError
from django_inngest.models import FunctionRegistration, FunctionRun
from django_inngest.registrations import sync_registrations
from django_inngest.registry import FunctionRegistry, autodiscover, registry

#: What autodiscovery found at startup (tests/testapp/inngest_functions.py), read at import.
DISCOVERED = sorted(f.id for f in registry.all())


def first(ctx: Context) -> str:
    return "first"


def second(ctx: Context) -> str:
    return "second"


# -- registration ----------------------------------------------------------------------------


def test_duplicate_id_raises_naming_both_definitions(inngest: Inngest) -> None:
    inngest.create_function(fn_id="dup", trigger=TriggerEvent(event="t/a"))(first)
    with pytest.raises(FunctionAlreadyRegisteredError) as excinfo:
        inngest.create_function(fn_id="dup", trigger=TriggerEvent(event="t/b"))(second)
    message = str(excinfo.value)
    assert "test-app-dup" in message
    assert "tests.test_registry.first" in message
    assert "tests.test_registry.second" in message
    assert "test_registry.py:" in message  # file:line of each side
    # The first definition stays.
    function = inngest.registry.get("test-app-dup")
    assert function is not None and function.handler is first


def test_duplicate_across_clients_of_the_same_app(isolated_registry: FunctionRegistry) -> None:
    Inngest(app_id="shop").create_function(fn_id="x", trigger=TriggerEvent(event="t/a"))(first)
    with pytest.raises(FunctionAlreadyRegisteredError, match="'shop-x'"):
        Inngest(app_id="shop").create_function(fn_id="x", trigger=TriggerEvent(event="t/a"))(second)


def test_same_fn_id_in_different_apps_is_no_conflict(isolated_registry: FunctionRegistry) -> None:
    Inngest(app_id="a").create_function(fn_id="x", trigger=TriggerEvent(event="t/a"))(first)
    Inngest(app_id="b").create_function(fn_id="x", trigger=TriggerEvent(event="t/a"))(second)
    assert sorted(f.id for f in isolated_registry.all()) == ["a-x", "b-x"]


def test_reregistering_the_same_definition_is_idempotent(inngest: Inngest) -> None:
    function = inngest.create_function(fn_id="same", trigger=TriggerEvent(event="t/a"))(first)
    inngest.registry.register(function)
    # A new Function built from the same handler (what a module re-import does) is accepted too.
    again = inngest.create_function(fn_id="same", trigger=TriggerEvent(event="t/b"))(first)
    assert [f.id for f in inngest.registry.all()] == ["test-app-same"]
    assert inngest.registry.get("test-app-same") is again


def test_reimporting_a_module_is_idempotent(
    isolated_registry: FunctionRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reimported_fns.py").write_text(
        textwrap.dedent(
            """
            from django_inngest import Inngest, TriggerEvent

            client = Inngest(app_id="reimport")

            @client.create_function(fn_id="f", trigger=TriggerEvent(event="t/f"))
            def f(ctx):
                return 1
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "reimported_fns", raising=False)
    module = importlib.import_module("reimported_fns")
    try:
        importlib.reload(module)
        assert [f.id for f in isolated_registry.all()] == ["reimport-f"]
        assert isolated_registry.errors == []
    finally:
        sys.modules.pop("reimported_fns", None)


def test_unregister(inngest: Inngest) -> None:
    inngest.create_function(fn_id="gone", trigger=TriggerEvent(event="t/a"))(first)
    version = inngest.registry.version
    inngest.registry.unregister("test-app-gone")
    assert "test-app-gone" not in inngest.registry
    assert inngest.registry.version > version
    inngest.registry.unregister("test-app-gone")  # no error when absent


def test_isolated_swaps_in_an_empty_registry_and_restores() -> None:
    assert "testapp-hello" in registry
    before = registry.all()
    before_errors = list(registry.errors)
    with registry.isolated() as isolated:
        assert isolated is registry
        assert registry.all() == []
        assert registry.errors == []
        Inngest(app_id="iso").create_function(fn_id="temp", trigger=TriggerEvent(event="t/a"))(
            first
        )
        registry.errors.append(FunctionAlreadyRegisteredError("recorded inside"))
        assert "iso-temp" in registry
    assert "iso-temp" not in registry
    assert registry.all() == before
    assert registry.errors == before_errors


def test_isolated_restores_after_an_exception() -> None:
    with pytest.raises(RuntimeError), registry.isolated():
        Inngest(app_id="iso").create_function(fn_id="temp", trigger=TriggerEvent(event="t/a"))(
            first
        )
        raise RuntimeError("boom")
    assert "iso-temp" not in registry
    assert "testapp-hello" in registry


# -- autodiscovery ---------------------------------------------------------------------------


def test_autodiscovery_found_the_test_app_module() -> None:
    function = registry.get("testapp-hello")
    assert function is not None
    assert function.source.startswith("tests.testapp.inngest_functions.hello")
    assert function.triggers == (TriggerEvent(event="testapp/hello"),)
    assert registry.errors == []


@pytest.fixture
def fresh_testapp_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let autodiscovery import the test apps' ``inngest_functions`` again; restore them after."""
    for package in (tests.testapp, tests.portapp):
        monkeypatch.delitem(sys.modules, f"{package.__name__}.inngest_functions")
        monkeypatch.setattr(package, "inngest_functions", package.inngest_functions)
    yield


@pytest.mark.usefixtures("fresh_testapp_module")
def test_autodiscover_imports_each_apps_module(isolated_registry: FunctionRegistry) -> None:
    assert isolated_registry.all() == []
    autodiscover()
    assert sorted(f.id for f in isolated_registry.all()) == DISCOVERED
    assert "testapp-hello" in DISCOVERED
    assert isolated_registry.errors == []


@pytest.mark.usefixtures("fresh_testapp_module")
def test_autodiscover_records_duplicates_instead_of_raising(
    isolated_registry: FunctionRegistry,
) -> None:
    Inngest(app_id="testapp").create_function(fn_id="hello", trigger=TriggerEvent(event="t/a"))(
        first
    )
    autodiscover()  # does not raise
    (error,) = isolated_registry.errors
    assert isinstance(error, FunctionAlreadyRegisteredError)
    message = str(error)
    assert "'testapp-hello'" in message
    assert "tests.test_registry.first" in message
    assert "tests.testapp.inngest_functions.hello" in message
    # The first definition is kept.
    kept = isolated_registry.get("testapp-hello")
    assert kept is not None and kept.handler is first


@pytest.mark.usefixtures("fresh_testapp_module")
@override_settings(DJANGO_INNGEST_AUTODISCOVER_MODULE=None)
def test_autodiscover_can_be_disabled(isolated_registry: FunctionRegistry) -> None:
    autodiscover()
    assert isolated_registry.all() == []


@pytest.mark.usefixtures("fresh_testapp_module")
@override_settings(DJANGO_INNGEST_AUTODISCOVER_MODULE="no_such_module_anywhere")
def test_autodiscover_module_name_is_a_setting(isolated_registry: FunctionRegistry) -> None:
    autodiscover()
    assert isolated_registry.all() == []
    assert "tests.testapp.inngest_functions" not in sys.modules


def test_global_state_was_restored() -> None:
    # Runs after the autodiscovery tests above (file order): nothing leaked.
    assert sorted(f.id for f in registry.all()) == DISCOVERED
    assert registry.errors == []
    assert sys.modules["tests.testapp.inngest_functions"].hello is registry.get("testapp-hello")


# -- registrations ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_post_migrate_synced_the_discovered_functions() -> None:
    # The test database was built by `migrate`, whose post_migrate signal synced registrations.
    row = FunctionRegistration.objects.get(function_id="testapp-hello")
    assert row.is_active
    assert (row.app_id, row.fn_id, row.name) == ("testapp", "hello", "hello")
    assert row.config["triggers"] == [{"event": "testapp/hello"}]


@pytest.mark.django_db
def test_post_migrate_signal_syncs_registrations() -> None:
    FunctionRegistration.objects.all().delete()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert sorted(FunctionRegistration.objects.values_list("function_id", "is_active")) == [
        (function_id, True) for function_id in DISCOVERED
    ]


def _rows() -> dict[str, tuple[bool, str]]:
    return {r.function_id: (r.is_active, r.name) for r in FunctionRegistration.objects.all()}


@pytest.mark.django_db
def test_sync_creates_updates_and_deactivates(inngest: Inngest) -> None:
    inngest.create_function(fn_id="a", trigger=TriggerEvent(event="t/a"))(first)
    inngest.create_function(fn_id="b", name="Bee", trigger=TriggerEvent(event="t/b"))(second)

    # The discovered functions are not in the isolated registry, so they are deactivated.
    assert sync_registrations() == (2, len(DISCOVERED))
    rows = _rows()
    assert set(rows) == {"test-app-a", "test-app-b", *DISCOVERED}
    assert (rows["test-app-a"], rows["test-app-b"]) == ((True, "a"), (True, "Bee"))
    assert sorted(k for k, (active, _) in rows.items() if not active) == DISCOVERED

    # B gets a run, then leaves the code: its row is deactivated, its run is kept.
    inngest.send_sync(Event(name="t/b"))
    (run,) = FunctionRun.objects.filter(function_id="test-app-b")
    inngest.registry.unregister("test-app-b")
    assert sync_registrations() == (1, 1)
    assert _rows()["test-app-b"] == (False, "Bee")
    assert FunctionRun.objects.filter(pk=run.pk, function_id="test-app-b").exists()

    # Syncing again deactivates nothing new.
    assert sync_registrations() == (1, 0)

    # B comes back with a new name: reactivated and updated, one row per function.
    inngest.create_function(fn_id="b", name="Bee 2", trigger=TriggerEvent(event="t/b2"))(second)
    assert sync_registrations() == (2, 0)
    assert _rows()["test-app-b"] == (True, "Bee 2")
    row = FunctionRegistration.objects.get(function_id="test-app-b")
    assert row.config["triggers"] == [{"event": "t/b2"}]
    assert FunctionRegistration.objects.filter(function_id="test-app-b").count() == 1


@pytest.mark.django_db
def test_registration_config_has_inngest_shape(inngest: Inngest) -> None:
    inngest.create_function(
        fn_id="import-all-contacts",
        name="Import all contacts",
        trigger=[
            TriggerEvent(event="contacts/import.requested"),
            TriggerEvent(event="contacts/*", expression="event.data.force == true"),
        ],
        cancel=[
            Cancel(
                event="contacts/import.cancelled",
                if_exp="event.data.importId == async.data.importId",
                timeout=3_600_000,
            ),
            Cancel(event="contacts/all.cancelled"),
        ],
        retries=2,
    )(first)
    sync_registrations()
    row = FunctionRegistration.objects.get(function_id="test-app-import-all-contacts")
    assert (row.app_id, row.fn_id, row.name, row.is_active) == (
        "test-app",
        "import-all-contacts",
        "Import all contacts",
        True,
    )
    config: dict[str, Any] = row.config
    assert config == {
        "id": "test-app-import-all-contacts",
        "name": "Import all contacts",
        "triggers": [
            {"event": "contacts/import.requested"},
            {"event": "contacts/*", "expression": "event.data.force == true"},
        ],
        "cancel": [
            {
                "event": "contacts/import.cancelled",
                "if": "event.data.importId == async.data.importId",
                "timeout": "3600s",
            },
            {"event": "contacts/all.cancelled"},
        ],
        "steps": {"step": {"retries": {"attempts": 2}}},
    }


@override_settings(DJANGO_INNGEST_AUTODISCOVER_MODULE="broken_functions")
def test_a_module_failing_half_way_registers_none_of_its_functions(
    isolated_registry: FunctionRegistry,
) -> None:
    sys.modules.pop("tests.testapp.broken_functions", None)
    with pytest.raises(RuntimeError, match="a mistake further down") as failed:
        autodiscover()
    notes = "\n".join(getattr(failed.value, "__notes__", []))
    assert "while importing tests.testapp.broken_functions" in notes
    assert "none of its functions are registered" in notes
    assert isolated_registry.get("broken-defined-first") is None  # rolled back
    assert isolated_registry.all() == []
    assert "tests.testapp.broken_functions" not in sys.modules


def test_all_or_nothing_keeps_what_a_block_registered_when_it_completes(
    isolated_registry: FunctionRegistry,
) -> None:
    with isolated_registry.all_or_nothing():
        Inngest(app_id="ok").create_function(fn_id="f", trigger=TriggerEvent(event="ok/f"))(first)
    assert isolated_registry.get("ok-f") is not None
    with pytest.raises(ValueError), isolated_registry.all_or_nothing():
        Inngest(app_id="ok").create_function(fn_id="g", trigger=TriggerEvent(event="ok/g"))(first)
        raise ValueError("half-way")
    assert isolated_registry.get("ok-g") is None and isolated_registry.get("ok-f") is not None
