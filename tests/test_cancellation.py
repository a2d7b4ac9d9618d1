"""Cancellation: every source, every state, the signal and the system event (sync mode)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from django_inngest import Cancel, Context, Event, Inngest, TriggerEvent, cancel_run
from django_inngest.engine.cancellation import (
    BulkCancellationError,
    RunAlreadyEndedError,
    RunNotFoundError,
    create_bulk_cancellation,
)
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, Listener, RunStatus, StepStatus
from django_inngest.signals import function_cancelled
from django_inngest.testing import drain
from tests.helpers import start_in_a_worker_thread

pytestmark = pytest.mark.django_db(transaction=True)

#: The example payload of ../shared/reference/seed-cleanup-after-cancellation.txt, verbatim.
SEED = Path(__file__).parent / "fixtures" / "seed-function-cancelled.json"
IMPORT_ID = "bdce1b1b-6e3a-43e6-84c2-2deb559cdde6"


def seed_payload() -> dict[str, Any]:
    return json.loads(SEED.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def newsletter(isolated_registry: Any) -> dict[str, Any]:
    """The seed scenario's two functions, ported verbatim."""
    client = Inngest(app_id="newsletter-app")
    cleaned: list[str] = []
    progress: list[str] = []

    @client.create_function(
        fn_id="import-all-contacts",
        trigger=TriggerEvent(event="contacts/import.requested"),
        cancel=[
            Cancel(
                event="contacts/import.cancelled",
                if_exp="async.data.importId == event.data.importId",
            )
        ],
    )
    def import_all_contacts(ctx: Context) -> str:
        for batch in range(3):
            ctx.step.run(f"batch-{batch}", lambda b=batch: progress.append(f"batch-{b}") or b)
            ctx.step.sleep(f"pause-{batch}", timedelta(seconds=10))
        return "imported"

    @client.create_function(
        name="Cleanup cancelled import",
        fn_id="cleanup-cancelled-import",
        trigger=TriggerEvent(
            event="inngest/function.cancelled",
            expression="event.data.function_id == 'newsletter-app-import-all-contacts'",
        ),
    )
    def cleanup(ctx: Context) -> None:
        cleaned.append(ctx.event.data["event"]["data"]["importId"])

    @client.create_function(
        fn_id="other-cleanup",
        trigger=TriggerEvent(
            event="inngest/function.cancelled",
            expression="event.data.function_id == 'newsletter-app-something-else'",
        ),
    )
    def other(ctx: Context) -> None:
        cleaned.append("WRONG")

    return {"client": client, "cleaned": cleaned, "progress": progress}


def request_import(client: Inngest, import_id: str = IMPORT_ID) -> FunctionRun:
    (event_id,) = client.send_sync(
        Event(name="contacts/import.requested", data={"importId": import_id})
    )
    return FunctionRun.objects.get(event_id=event_id)


def test_cancel_on_event_cancels_only_the_matching_run(newsletter: dict[str, Any]) -> None:
    client = newsletter["client"]
    mine, other = request_import(client), request_import(client, "another-import")
    assert mine.status == RunStatus.RUNNING  # sleeping after batch 0
    client.send_sync(Event(name="contacts/import.cancelled", data={"importId": IMPORT_ID}))
    mine.refresh_from_db()
    other.refresh_from_db()
    assert mine.status == RunStatus.CANCELLED and mine.cancel_source == "event"
    assert other.status == RunStatus.RUNNING
    assert newsletter["cleaned"] == [IMPORT_ID]
    assert not Listener.objects.filter(run=mine).exists()  # its timers and waits are gone
    assert Listener.objects.filter(run=other).exists()


def test_function_cancelled_payload_matches_the_seed_field_by_field(
    newsletter: dict[str, Any],
) -> None:
    client = newsletter["client"]
    run = request_import(client)
    cancel_run(run.run_id, reason="test")
    run.refresh_from_db()
    stored = StoredEvent.objects.get(name="inngest/function.cancelled")
    ours = {"name": stored.name, "data": stored.data, "id": stored.external_id, "ts": stored.ts}
    seed = seed_payload()
    assert set(ours) == set(seed)
    # Every field the seed defines, and one more under Inngest's reserved `_inngest` key.
    assert set(ours["data"]) == {*seed["data"], "_inngest"}
    assert ours["data"]["_inngest"]["reason"] == "test"
    assert ours["data"]["error"] == seed["data"]["error"]
    assert (
        ours["data"]["function_id"]
        == seed["data"]["function_id"]
        == "newsletter-app-import-all-contacts"
    )
    assert ours["data"]["run_id"] == run.run_id
    assert ours["id"] == run.run_id  # the run ID is the event ID
    trigger = run.event
    for key in ("event",):
        assert set(ours["data"][key]) == set(seed["data"][key])
        assert ours["data"][key]["name"] == seed["data"][key]["name"]
        assert ours["data"][key]["data"] == seed["data"][key]["data"]
        assert ours["data"][key]["user"] == {}
        assert ours["data"][key]["id"] == trigger.internal_id
        assert ours["data"][key]["ts"] == trigger.ts
    assert ours["data"]["events"] == [ours["data"]["event"]]
    assert [set(e) for e in ours["data"]["events"]] == [set(e) for e in seed["data"]["events"]]
    assert ours["ts"] == int(run.ended_at.timestamp() * 1000)  # the cancellation time


def test_seed_payload_matches_cleanup_and_no_other_function(newsletter: dict[str, Any]) -> None:
    from django_inngest.ingest.events import send_events

    seed = seed_payload()
    send_events([seed], allow_internal=True)
    started = set(FunctionRun.objects.values_list("function_id", flat=True))
    assert started == {"newsletter-app-cleanup-cancelled-import"}
    assert newsletter["cleaned"] == [IMPORT_ID]


def test_event_never_cancels_the_run_it_started(isolated_registry: Any) -> None:
    client = Inngest(app_id="app")

    @client.create_function(
        fn_id="self", trigger=TriggerEvent(event="x/go"), cancel=[Cancel(event="x/go")]
    )
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(seconds=30))

    first = request_go(client)
    first.refresh_from_db()
    assert first.status == RunStatus.RUNNING  # its own trigger did not cancel it
    second = request_go(client)  # a cancel rule without `if` cancels every in-flight run
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == RunStatus.CANCELLED
    assert second.status == RunStatus.RUNNING


def request_go(client: Inngest) -> FunctionRun:
    (event_id,) = client.send_sync(Event(name="x/go"))
    return FunctionRun.objects.get(event_id=event_id)


def test_cancel_timeout_bounds_the_window(isolated_registry: Any) -> None:
    client = Inngest(app_id="app")

    @client.create_function(
        fn_id="windowed",
        trigger=TriggerEvent(event="x/start"),
        cancel=[Cancel(event="x/stop", match="data.id", timeout=timedelta(minutes=5))],
    )
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(hours=1))

    (event_id,) = client.send_sync(Event(name="x/start", data={"id": 1}))
    run = FunctionRun.objects.get(event_id=event_id)
    listener = run.listeners.get()
    assert timedelta(minutes=4) < listener.expires_at - timezone.now() <= timedelta(minutes=5)
    Listener.objects.filter(pk=listener.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client.send_sync(Event(name="x/stop", data={"id": 1}))
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_queued_run_never_starts(newsletter: dict[str, Any]) -> None:
    client = newsletter["client"]
    with transaction.atomic():
        # Inside the transaction the run exists but has not been dispatched yet.
        run = request_import(client)
        assert run.status == RunStatus.QUEUED
        cancel_run(run.run_id, source="python", reason="changed my mind")
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.started_at is None and not run.steps.exists()
    assert newsletter["progress"] == []


def test_mid_step_cancel_drops_the_late_result(
    isolated_registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:

    client = Inngest(app_id="mid")
    entered, release = threading.Event(), threading.Event()
    after: list[str] = []

    def long_step() -> str:
        entered.set()
        release.wait(10)
        return "late"

    @client.create_function(fn_id="long", trigger=TriggerEvent(event="mid/go"))
    def fn(ctx: Context) -> None:
        ctx.step.run("long", long_step)
        ctx.step.run("next", lambda: after.append("next"))

    run, worker = start_in_a_worker_thread(client, "mid/go", monkeypatch)
    assert entered.wait(10)
    cancel_run(run.run_id, reason="mid-step")
    release.set()
    worker.join(10)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    # The late result was dropped: no Completed row, no stored output.
    assert not run.steps.filter(step_id="long", status=StepStatus.COMPLETED).exists()
    assert not run.steps.filter(output="late").exists()
    assert after == []  # no further step ran


def test_cancelling_an_ended_run_is_refused_and_cancel_is_idempotent(
    newsletter: dict[str, Any],
) -> None:
    client = newsletter["client"]
    run = request_import(client)
    first = cancel_run(run.run_id)
    again = cancel_run(run.run_id)
    assert first.cancelled and not again.cancelled
    assert StoredEvent.objects.filter(name="inngest/function.cancelled").count() == 1
    FunctionRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED)
    with pytest.raises(RunAlreadyEndedError, match="Cannot cancel an ended run"):
        cancel_run(run.run_id)
    with pytest.raises(RunNotFoundError):
        cancel_run("01JDJKGTGDVV4DTXHY6XYB7BKK")


def test_signal_is_sent_once_after_commit_with_source_and_reason(
    newsletter: dict[str, Any],
) -> None:
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, run: FunctionRun, source: str, reason: str, **kwargs: Any) -> None:
        calls.append(
            {
                "run": run.run_id,
                "source": source,
                "reason": reason,
                "in_atomic": transaction.get_connection().in_atomic_block,
            }
        )

    function_cancelled.connect(receiver)
    try:
        run = request_import(newsletter["client"])
        with transaction.atomic():
            cancel_run(run.run_id, source="admin", reason="by hand")
            assert calls == []  # not before commit
        cancel_run(run.run_id, source="admin", reason="again")
    finally:
        function_cancelled.disconnect(receiver)
    assert calls == [
        {"run": run.run_id, "source": "admin", "reason": "by hand", "in_atomic": False}
    ]


def test_a_cancelled_run_sends_finished_but_not_failed(newsletter: dict[str, Any]) -> None:
    run = request_import(newsletter["client"])
    cancel_run(run.run_id)
    finished = StoredEvent.objects.get(name="inngest/function.finished", data__run_id=run.run_id)
    assert finished.data["_inngest"] == {"status": "Cancelled"}
    assert not StoredEvent.objects.filter(name="inngest/function.failed").exists()


def test_bulk_cancellation_sweeps_and_the_lazy_check_catches_later_runs(
    newsletter: dict[str, Any],
) -> None:
    client = newsletter["client"]
    a, b = request_import(client, "a"), request_import(client, "b")
    record, count = create_bulk_cancellation(
        app_id="newsletter-app",
        function_id="import-all-contacts",
        started_before=timezone.now() + timedelta(seconds=4),
        if_exp="event.data.importId == 'a'",
    )
    a.refresh_from_db()
    b.refresh_from_db()
    assert count == 1
    assert (a.status, a.cancel_source, a.cancellation_id) == (
        RunStatus.CANCELLED,
        "bulk",
        record.pk,
    )
    assert b.status == RunStatus.RUNNING
    # A run created inside the window after the sweep is caught before its first step.
    with transaction.atomic():
        late = request_import(client, "a")
    late.refresh_from_db()
    assert late.status == RunStatus.CANCELLED and not late.steps.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_id": ""}, "app_id is required"),
        ({"function_id": ""}, "function_id is required"),
        ({"function_id": "nope"}, "no function 'nope'"),
        ({"if_exp": "event.data.x =="}, "invalid expression"),
        ({"if_exp": "async.data.x == 1"}, "invalid expression"),
        ({"started_before": "future"}, "at most 5 seconds in the future"),
        ({"started_after": "after-before"}, "earlier than started_before"),
    ],
)
def test_bulk_cancellation_validation(
    newsletter: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    now = timezone.now()
    args: dict[str, Any] = {
        "app_id": "newsletter-app",
        "function_id": "import-all-contacts",
        "started_before": now,
    }
    args.update(kwargs)
    if args["started_before"] == "future":
        args["started_before"] = now + timedelta(minutes=1)
    if args.get("started_after") == "after-before":
        args["started_after"] = now + timedelta(seconds=1)
    from django_inngest.registrations import sync_registrations

    sync_registrations()
    with pytest.raises(BulkCancellationError, match=message):
        create_bulk_cancellation(**args)


def test_cli_cancels_by_id_and_by_filter(
    newsletter: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    client = newsletter["client"]
    a, b = request_import(client, "a"), request_import(client, "b")
    call_command("inngest_cancel", a.run_id, "--reason", "cli test")
    a.refresh_from_db()
    assert (a.status, a.cancel_source, a.cancel_reason) == (RunStatus.CANCELLED, "cli", "cli test")
    call_command(
        "inngest_cancel",
        "--app-id",
        "newsletter-app",
        "--function-id",
        "import-all-contacts",
        "--if",
        "event.data.importId == 'b'",
    )
    b.refresh_from_db()
    assert b.status == RunStatus.CANCELLED
    out = capsys.readouterr().out
    assert "Cancelled 1 run" in out


def test_waiting_run_cancel_removes_the_wait(isolated_registry: Any) -> None:
    client = Inngest(app_id="app")

    @client.create_function(fn_id="waits", trigger=TriggerEvent(event="w/start"))
    def fn(ctx: Context) -> Any:
        return ctx.step.wait_for_event("w", event="w/reply", match="data.id", timeout=60_000)

    (event_id,) = client.send_sync(Event(name="w/start", data={"id": 7}))
    run = FunctionRun.objects.get(event_id=event_id)
    assert run.listeners.filter(kind="wait").exists()
    cancel_run(run.run_id)
    assert not run.listeners.exists()
    client.send_sync(Event(name="w/reply", data={"id": 7}))  # finds no wait any more
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.steps.get().status == StepStatus.WAITING  # the timeline shows where it stopped
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_cancelled_runs_do_not_call_on_failure(isolated_registry: Any) -> None:
    client = Inngest(app_id="app")
    failures: list[str] = []

    @client.create_function(
        fn_id="guarded",
        trigger=TriggerEvent(event="g/start"),
        on_failure=lambda ctx: failures.append(ctx.run_id),
    )
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(minutes=1))

    (event_id,) = client.send_sync(Event(name="g/start"))
    cancel_run(FunctionRun.objects.get(event_id=event_id).run_id)
    drain()
    assert failures == []
    assert not FunctionRun.objects.filter(function_id="app-guarded-failure").exists()


def test_a_long_step_can_stop_early_with_is_cancelled(
    isolated_registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond Inngest: cooperative cancellation inside a step."""

    client = Inngest(app_id="coop")
    started = threading.Event()
    processed: list[int] = []

    @client.create_function(fn_id="batches", trigger=TriggerEvent(event="coop/go"))
    def fn(ctx: Context) -> None:
        def work() -> int:
            for item in range(1000):
                if ctx.is_cancelled():
                    return item
                processed.append(item)
                started.set()
                threading.Event().wait(0.01)
            return 1000

        ctx.step.run("work", work)

    run, worker = start_in_a_worker_thread(client, "coop/go", monkeypatch)
    assert started.wait(10)
    cancel_run(run.run_id, reason="stop early")
    worker.join(10)
    assert not worker.is_alive()
    assert 0 < len(processed) < 1000  # it stopped well before the end
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_in_a_batch_each_event_sees_only_the_listeners_before_it(isolated_registry: Any) -> None:
    client = Inngest(app_id="batch")

    @client.create_function(
        fn_id="job", trigger=TriggerEvent(event="b/start"), cancel=[Cancel(event="b/stop")]
    )
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(minutes=5))

    # stop, start A, stop, start B: the second stop cancels A only; B starts after it.
    ids = client.send_sync(
        [Event(name="b/stop"), Event(name="b/start"), Event(name="b/stop"), Event(name="b/start")]
    )
    run_a = FunctionRun.objects.get(event_id=ids[1])
    run_b = FunctionRun.objects.get(event_id=ids[3])
    assert run_a.status == RunStatus.CANCELLED
    assert run_a.cancel_event_id == ids[2]
    assert run_a.cancel_actor == f"event {ids[2]}"
    assert run_b.status == RunStatus.RUNNING


def test_a_cancel_event_for_a_run_that_just_ended_is_still_accepted(isolated_registry: Any) -> None:
    client = Inngest(app_id="late")

    @client.create_function(
        fn_id="job", trigger=TriggerEvent(event="l/start"), cancel=[Cancel(event="l/stop")]
    )
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(minutes=5))

    (event_id,) = client.send_sync(Event(name="l/start"))
    run = FunctionRun.objects.get(event_id=event_id)
    # The run completes concurrently: its row is ended, but the listener was already read.
    FunctionRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED)
    (stop_id,) = client.send_sync(Event(name="l/stop"))  # must not raise
    assert StoredEvent.objects.filter(pk=stop_id).exists()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
