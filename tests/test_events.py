"""Ingest on the Python side: ``events.send_events`` and ``Inngest.send_sync``.

Validation, storage, dedupe, trigger matching and on-commit dispatch. Most tests use plain
``django_db``: runs are created Queued and, since the test transaction never commits, are not
dispatched; the transactional tests at the end check dispatch itself.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_inngest import Context, Event, Inngest, TriggerEvent, executor
from django_inngest.exceptions import EventValidationError
from django_inngest.ids import is_ulid
from django_inngest.ingest.events import send_events
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, RunStatus

SEED = json.loads((Path(__file__).parent / "fixtures" / "seed-function-cancelled.json").read_text())
SEED_EVENT: dict[str, Any] = SEED["data"]["event"]


def handler(ctx: Context) -> None:
    return None


def runs_of(function_id: str) -> list[FunctionRun]:
    return list(FunctionRun.objects.filter(function_id=function_id))


def define(client: Inngest, fn_id: str, *triggers: TriggerEvent) -> str:
    return client.create_function(fn_id=fn_id, trigger=list(triggers))(handler).id


# -- starting runs ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_event_starts_one_run_of_import_all_contacts(isolated_registry: Any) -> None:
    client = Inngest(app_id="newsletter-app")
    fid = define(client, "import-all-contacts", TriggerEvent(event="contacts/import.requested"))
    define(client, "unrelated", TriggerEvent(event="contacts/import.cancelled"))
    assert fid == "newsletter-app-import-all-contacts"

    (event_id,) = send_events([SEED_EVENT])

    (run,) = FunctionRun.objects.all()
    assert run.function_id == "newsletter-app-import-all-contacts"
    assert run.status == RunStatus.QUEUED
    assert is_ulid(run.run_id)
    event = run.event
    assert event.internal_id == event_id != SEED_EVENT["id"]
    assert event.external_id == "01JDJK451Y9KFGE5TTM2FHDEDN"
    assert event.name == "contacts/import.requested"
    assert event.data == {"importId": "bdce1b1b-6e3a-43e6-84c2-2deb559cdde6"}
    assert event.ts == 1732558407003
    assert event.user == {}
    assert not event.is_duplicate
    assert event.as_payload() == SEED_EVENT


@pytest.mark.django_db
def test_event_that_triggers_nothing_is_still_stored(inngest: Inngest) -> None:
    define(inngest, "f", TriggerEvent(event="t/other"))
    (event_id,) = inngest.send_sync(Event(name="t/nothing"))
    assert StoredEvent.objects.filter(internal_id=event_id).exists()
    assert FunctionRun.objects.count() == 0


@pytest.mark.django_db
def test_each_matching_function_gets_a_run(inngest: Inngest) -> None:
    a = define(inngest, "a", TriggerEvent(event="t/x"))
    b = define(inngest, "b", TriggerEvent(event="t/x"))
    define(inngest, "c", TriggerEvent(event="t/y"))
    inngest.send_sync([Event(name="t/x"), Event(name="t/x")])
    assert len(runs_of(a)) == 2
    assert len(runs_of(b)) == 2
    assert FunctionRun.objects.count() == 4
    # Each run points at its own event.
    assert len({r.event_id for r in runs_of(a)}) == 2


@pytest.mark.django_db
def test_wildcard_trigger(inngest: Inngest) -> None:
    fid = define(inngest, "users", TriggerEvent(event="app/user.*"))
    inngest.send_sync(
        [Event(name="app/user.created"), Event(name="app/users.x"), Event(name="app/user")]
    )
    (run,) = runs_of(fid)
    assert run.event.name == "app/user.created"
    inngest.send_sync(Event(name="app/user.deleted"))
    assert sorted(r.event.name for r in runs_of(fid)) == ["app/user.created", "app/user.deleted"]


@pytest.mark.django_db
def test_trigger_expression_filters(inngest: Inngest) -> None:
    fid = define(
        inngest, "pro", TriggerEvent(event="t/signup", expression="event.data.plan == 'pro'")
    )
    inngest.send_sync(
        [
            Event(name="t/signup", data={"plan": "pro", "n": 1}),
            Event(name="t/signup", data={"plan": "free", "n": 2}),
            Event(name="t/signup", data={"n": 3}),  # missing field: false, not an error
        ]
    )
    (run,) = runs_of(fid)
    assert run.event.data == {"plan": "pro", "n": 1}


@pytest.mark.django_db
@pytest.mark.parametrize(("expression", "expected"), [("true", 1), ("false", 0), ("1 == 1", 1)])
def test_constant_trigger_expressions(inngest: Inngest, expression: str, expected: int) -> None:
    fid = define(inngest, "f", TriggerEvent(event="t/x", expression=expression))
    inngest.send_sync(Event(name="t/x"))
    assert len(runs_of(fid)) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "expression",
    [
        "event.data.n / 0 == 1",  # evaluation error
        "size(event.data.n) == 1",  # no such overload
        "event.data.s",  # not a boolean
        "event.data.plan ==",  # does not even parse (check E020 reports it; ingest survives)
    ],
)
def test_expression_error_is_no_match_and_is_logged(
    inngest: Inngest, caplog: pytest.LogCaptureFixture, expression: str
) -> None:
    broken = define(inngest, "broken", TriggerEvent(event="t/x", expression=expression))
    healthy = define(inngest, "healthy", TriggerEvent(event="t/x"))
    with caplog.at_level(logging.WARNING, logger="django_inngest"):
        (event_id,) = inngest.send_sync(Event(name="t/x", data={"n": 1, "s": "abc"}))
    assert StoredEvent.objects.filter(internal_id=event_id).exists()
    assert runs_of(broken) == []
    assert len(runs_of(healthy)) == 1
    assert any(expression in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.django_db
def test_several_matching_triggers_start_one_run(inngest: Inngest) -> None:
    fid = define(
        inngest,
        "multi",
        TriggerEvent(event="app/user.created"),
        TriggerEvent(event="app/user.*"),
        TriggerEvent(event="app/user.created", expression="event.data.id == 1"),
    )
    inngest.send_sync(Event(name="app/user.created", data={"id": 1}))
    assert len(runs_of(fid)) == 1
    inngest.send_sync(Event(name="app/user.updated", data={"id": 1}))
    assert len(runs_of(fid)) == 2


@pytest.mark.django_db
def test_later_trigger_matches_when_the_first_expression_is_false(inngest: Inngest) -> None:
    fid = define(
        inngest,
        "either",
        TriggerEvent(event="t/x", expression="event.data.a == 1"),
        TriggerEvent(event="t/x", expression="event.data.b == 1"),
    )
    inngest.send_sync([Event(name="t/x", data={"b": 1}), Event(name="t/x", data={"c": 1})])
    (run,) = runs_of(fid)
    assert run.event.data == {"b": 1}


# -- dedupe ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_repeated_sender_id_within_24h_is_stored_but_starts_nothing(inngest: Inngest) -> None:
    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    (first,) = inngest.send_sync(Event(name="t/x", id="order-1", data={"n": 1}))
    (second,) = inngest.send_sync(Event(name="t/x", id="order-1", data={"n": 2}))
    assert first != second
    stored = {e.internal_id: e for e in StoredEvent.objects.all()}
    assert stored[first].is_duplicate is False
    assert stored[second].is_duplicate is True
    assert stored[second].data == {"n": 2}
    (run,) = runs_of(fid)
    assert run.event_id == first
    # A different sender ID is not a duplicate.
    inngest.send_sync(Event(name="t/x", id="order-2"))
    assert len(runs_of(fid)) == 2


@pytest.mark.django_db
def test_repeated_sender_id_within_one_batch(inngest: Inngest) -> None:
    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    ids = inngest.send_sync([Event(name="t/x", id="same"), Event(name="t/x", id="same")])
    flags = [StoredEvent.objects.get(internal_id=i).is_duplicate for i in ids]
    assert flags == [False, True]
    assert len(runs_of(fid)) == 1


@pytest.mark.django_db
def test_events_without_sender_id_never_dedupe(inngest: Inngest) -> None:
    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    inngest.send_sync([Event(name="t/x"), Event(name="t/x")])
    inngest.send_sync(Event(name="t/x"))
    assert len(runs_of(fid)) == 3
    assert not StoredEvent.objects.filter(is_duplicate=True).exists()


@pytest.mark.django_db
def test_repeated_sender_id_after_the_window_runs_again(inngest: Inngest) -> None:
    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    (first,) = inngest.send_sync(Event(name="t/x", id="order-1"))
    later = timezone.now() + timedelta(hours=24, seconds=1)
    (second,) = send_events([{"name": "t/x", "id": "order-1"}], now=later)
    (third,) = send_events([{"name": "t/x", "id": "order-1"}], now=later)
    assert StoredEvent.objects.get(internal_id=second).is_duplicate is False
    assert StoredEvent.objects.get(internal_id=third).is_duplicate is True  # a new window
    assert sorted(r.event_id for r in runs_of(fid)) == sorted([first, second])


@pytest.mark.django_db
def test_dedupe_window_is_a_setting(inngest: Inngest, settings: Any) -> None:
    settings.DJANGO_INNGEST_DEDUPE_WINDOW_SECONDS = 60
    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    inngest.send_sync(Event(name="t/x", id="k"))
    (inside,) = send_events(
        [{"name": "t/x", "id": "k"}], now=timezone.now() + timedelta(seconds=50)
    )
    (after,) = send_events([{"name": "t/x", "id": "k"}], now=timezone.now() + timedelta(seconds=70))
    assert StoredEvent.objects.get(internal_id=inside).is_duplicate is True
    assert StoredEvent.objects.get(internal_id=after).is_duplicate is False
    assert len(runs_of(fid)) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_of_one_id_start_exactly_one_run(inngest: Inngest) -> None:
    import threading

    from django.db import connection

    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    barrier = threading.Barrier(4, timeout=10)
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            barrier.wait()
            send_events([{"name": "t/x", "id": "same-order"}])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stored = StoredEvent.objects.filter(name="t/x")
    assert stored.count() == 4
    assert stored.filter(is_duplicate=False).count() == 1
    assert len(runs_of(fid)) == 1


# -- normalisation ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_data_inngest_is_stripped_from_user_events(inngest: Inngest) -> None:
    (event_id,) = inngest.send_sync(
        Event(name="t/x", data={"a": 1, "_inngest": {"source": "forged"}})
    )
    assert StoredEvent.objects.get(internal_id=event_id).data == {"a": 1}


@pytest.mark.django_db
def test_ts_defaults_to_receive_time_in_ms(inngest: Inngest) -> None:
    now = datetime(2024, 11, 25, 18, 13, 27, 3000, tzinfo=UTC)
    ids = send_events(
        [{"name": "t/x"}, {"name": "t/x", "ts": 0}, {"name": "t/x", "ts": 1_700_000_000_005}],
        now=now,
    )
    stored = [StoredEvent.objects.get(internal_id=i) for i in ids]
    assert [e.ts for e in stored] == [1732558407003, 1732558407003, 1_700_000_000_005]
    assert all(e.received_at == now for e in stored)


@pytest.mark.django_db
def test_ts_defaults_to_now(inngest: Inngest) -> None:
    before = int(timezone.now().timestamp() * 1000)
    (event_id,) = inngest.send_sync(Event(name="t/x"))
    after = int(timezone.now().timestamp() * 1000)
    assert before <= StoredEvent.objects.get(internal_id=event_id).ts <= after


@pytest.mark.django_db
def test_optional_fields_are_stored(inngest: Inngest) -> None:
    (event_id,) = send_events(
        [
            {
                "name": "t/x",
                "data": None,
                "user": {"email": "a@b.c"},
                "v": "2024-01-01.1",
                "ts": 1_700_000_000_007,
            }
        ]
    )
    event = StoredEvent.objects.get(internal_id=event_id)
    assert (event.data, event.user, event.v, event.ts, event.external_id) == (
        {},
        {"email": "a@b.c"},
        "2024-01-01.1",
        1_700_000_000_007,
        "",
    )
    assert event.as_payload() == {
        "name": "t/x",
        "data": {},
        "user": {"email": "a@b.c"},
        "v": "2024-01-01.1",
        "ts": 1_700_000_000_007,
        "id": event_id,  # no sender ID: the internal one
    }


# -- validation ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["inngest/function.failed", "Inngest/function.failed", "INNGEST/x", "inngest/"]
)
def test_reserved_inngest_prefix_is_rejected(inngest: Inngest, name: str) -> None:
    with pytest.raises(EventValidationError, match="`name`") as excinfo:
        inngest.send_sync(Event(name=name))
    assert "inngest/" in str(excinfo.value)
    assert StoredEvent.objects.count() == 0


@pytest.mark.django_db
def test_inngest_prefix_elsewhere_in_the_name_is_fine(inngest: Inngest) -> None:
    inngest.send_sync(Event(name="app/inngest/x"))
    assert StoredEvent.objects.get().name == "app/inngest/x"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "t/x", "data": [1]}, "`data`"),
        ({"name": "t/x", "data": "x"}, "`data`"),
        ({"name": "t/x", "data": 5}, "`data`"),
        ({"name": "t/x", "user": ["u"]}, "`user`"),
        ({"name": "t/x", "user": "u"}, "`user`"),
        ({"name": "t/x", "ts": -1}, "`ts`"),
        ({"name": "t/x", "ts": True}, "`ts`"),
        ({"name": "t/x", "ts": "1700000000000"}, "`ts`"),
        ({"name": "t/x", "ts": 1.5}, "`ts`"),
        ({"name": "t/x", "id": 5}, "`id`"),
        ({"name": "t/x", "id": ["a"]}, "`id`"),
        ({"name": "t/x", "id": "x" * 256}, "`id`"),
        ({"name": "t/x", "v": 1}, "`v`"),
        ({"name": "t/x", "v": "x" * 65}, "`v`"),
        ({"name": "t/x", "ts": 315_532_799_999}, "`ts`"),  # 1979-12-31
        ({"name": "t/x", "ts": 4_102_444_800_001}, "`ts`"),  # after 2100-01-01
        ({"name": " t/x"}, "`name`"),
        ({"name": "t/x\n"}, "`name`"),
        ({"data": {}}, "`name`"),
        ({"name": ""}, "`name`"),
        ({"name": "   "}, "`name`"),
        ({"name": 5}, "`name`"),
        ({"name": "x" * 256}, "`name`"),
    ],
)
def test_bad_field_raises_naming_it(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(EventValidationError) as excinfo:
        send_events([payload])
    assert field in str(excinfo.value)
    assert StoredEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("payload", ["t/x", ["t/x"], None, 1])
def test_event_must_be_an_object(payload: Any) -> None:
    with pytest.raises(EventValidationError, match="object"):
        send_events([payload])


@pytest.mark.django_db
def test_oversize_event_is_rejected() -> None:
    with override_settings(DJANGO_INNGEST_MAX_EVENT_BYTES=100):
        send_events([{"name": "t/x", "data": {"s": "x" * 50}}])  # fits
        with pytest.raises(EventValidationError) as excinfo:
            send_events([{"name": "t/x", "data": {"s": "x" * 100}}])
    assert "over the limit of 100 bytes" in str(excinfo.value)
    assert StoredEvent.objects.count() == 1
    # The default limit (512 KiB) accepts the same event.
    send_events([{"name": "t/x", "data": {"s": "x" * 100}}])
    assert StoredEvent.objects.count() == 2


@pytest.mark.django_db
def test_batch_is_all_or_nothing(inngest: Inngest) -> None:
    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    with pytest.raises(EventValidationError) as excinfo:
        send_events([{"name": "t/x"}, {"name": "t/x"}, {"name": "t/x", "ts": "soon"}])
    message = str(excinfo.value)
    assert message.startswith("event 2: ")
    assert "`ts`" in message
    assert StoredEvent.objects.count() == 0
    assert runs_of(fid) == []


# -- transactions and dispatch ---------------------------------------------------------------


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(executor, "dispatch", lambda run_ids: calls.append(list(run_ids)))
    return calls


@pytest.mark.django_db(transaction=True)
def test_send_outside_a_transaction_dispatches_at_once(
    inngest: Inngest, dispatched: list[list[str]]
) -> None:
    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    inngest.send_sync(Event(name="t/x"))
    (run,) = runs_of(fid)
    assert dispatched == [[run.run_id]]


@pytest.mark.django_db(transaction=True)
def test_send_inside_atomic_dispatches_only_on_commit(
    inngest: Inngest, dispatched: list[list[str]]
) -> None:
    fid = define(inngest, "f", TriggerEvent(event="t/x"))
    with transaction.atomic():
        (event_id,) = inngest.send_sync(Event(name="t/x"))
        (run,) = runs_of(fid)
        assert run.status == RunStatus.QUEUED
        assert run.event_id == event_id
        assert dispatched == []
    assert dispatched == [[run.run_id]]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_send_stores_nothing_and_dispatches_nothing(
    inngest: Inngest, dispatched: list[list[str]]
) -> None:
    define(inngest, "f", TriggerEvent(event="t/x"))

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        inngest.send_sync(Event(name="t/x"))
        assert FunctionRun.objects.count() == 1
        raise Rollback
    assert StoredEvent.objects.count() == 0
    assert FunctionRun.objects.count() == 0
    assert dispatched == []


@pytest.mark.django_db(transaction=True)
def test_committed_send_runs_the_function_with_django_q_sync(inngest: Inngest) -> None:
    seen: list[dict[str, Any]] = []

    @inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/x"))
    def f(ctx: Context) -> int:
        seen.append(dict(ctx.event.data))
        return 42

    with transaction.atomic():
        inngest.send_sync(Event(name="t/x", data={"a": 1, "_inngest": {"x": 1}}))
        assert seen == []  # not before commit
    (run,) = runs_of("test-app-f")
    assert run.status == RunStatus.COMPLETED and run.output == 42
    assert seen == [{"a": 1}]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_first_send_does_not_break_the_next(inngest: Inngest) -> None:
    """The first run of a function creates its registration row; if that send is rolled back,
    the row goes too, and the next send must create it again rather than trust a cache."""
    from django.db import transaction

    from django_inngest.models import FunctionRegistration

    @inngest.create_function(fn_id="fresh", trigger=TriggerEvent(event="t/fresh"))
    def fresh(ctx: Context) -> None:
        return None

    FunctionRegistration.objects.all().delete()
    with transaction.atomic():
        inngest.send_sync(Event(name="t/fresh"))
        transaction.set_rollback(True)
    assert not FunctionRegistration.objects.exists()
    inngest.send_sync(Event(name="t/fresh"))
    assert FunctionRun.objects.get().function_id == "test-app-fresh"
    assert FunctionRegistration.objects.filter(function_id="test-app-fresh").exists()
