"""Housekeeping: the cancel-signal outbox, expired listeners, and the executor's error paths."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_inngest import Cancel, Context, Event, Inngest, TriggerEvent, executor, poller
from django_inngest.engine import maintenance
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, Listener, RunStatus
from django_inngest.signals import function_cancelled

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sleeper(isolated_registry: Any) -> Inngest:
    client = Inngest(app_id="m")

    @client.create_function(
        fn_id="sleeper", trigger=TriggerEvent(event="m/go"), cancel=[Cancel(event="m/stop")]
    )
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(hours=1))

    return client


def test_a_cancel_signal_lost_to_a_crash_is_redelivered_once(
    sleeper: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[str] = []

    def receiver(sender: Any, run: FunctionRun, **kwargs: Any) -> None:
        received.append(run.run_id)

    (event_id,) = sleeper.send_sync(Event(name="m/go"))
    run = FunctionRun.objects.get(event_id=event_id)
    # The process "dies" between the cancel's commit and its on_commit callbacks.
    monkeypatch.setattr("django_inngest.engine.lifecycle.send_cancelled_signal", lambda run: None)
    from django_inngest import cancel_run

    cancel_run(run.run_id)
    monkeypatch.undo()
    assert not StoredEvent.objects.filter(name="inngest/function.cancelled").exists()
    assert maintenance.redeliver_cancel_signals() == 0  # within the grace period: wait
    FunctionRun.objects.filter(pk=run.pk).update(ended_at=timezone.now() - timedelta(minutes=1))
    function_cancelled.connect(receiver)
    try:
        assert maintenance.redeliver_cancel_signals() == 1
        assert maintenance.redeliver_cancel_signals() == 0  # the outbox flag is now set
    finally:
        function_cancelled.disconnect(receiver)
    assert received == [run.run_id]
    event = StoredEvent.objects.get(name="inngest/function.cancelled")
    assert event.external_id == run.run_id
    run.refresh_from_db()
    assert run.cancelled_signal_sent


def test_the_cancelled_event_is_emitted_at_most_once_per_run(sleeper: Inngest) -> None:
    from django_inngest import cancel_run
    from django_inngest.engine.lifecycle import emit_cancelled_event

    (event_id,) = sleeper.send_sync(Event(name="m/go"))
    run = FunctionRun.objects.get(event_id=event_id)
    cancel_run(run.run_id)
    run.refresh_from_db()
    assert emit_cancelled_event(run) is False  # the receiver already did it
    assert StoredEvent.objects.filter(name="inngest/function.cancelled").count() == 1


def test_expired_cancel_listeners_are_deleted_after_the_grace_period(sleeper: Inngest) -> None:
    (event_id,) = sleeper.send_sync(Event(name="m/go"))
    run = FunctionRun.objects.get(event_id=event_id)
    assert maintenance.delete_expired_listeners() == 0
    Listener.objects.filter(run=run).update(expires_at=timezone.now() - timedelta(minutes=21))
    assert maintenance.delete_expired_listeners() == 1
    assert run.status == RunStatus.RUNNING


def test_expired_dedupe_keys_are_deleted(sleeper: Inngest) -> None:
    from django_inngest.models import DedupeKey

    sleeper.send_sync([Event(name="m/other", id="a"), Event(name="m/other", id="b")])
    assert maintenance.delete_expired_dedupe_keys() == 0
    DedupeKey.objects.filter(key="a").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert maintenance.delete_expired_dedupe_keys() == 1
    assert list(DedupeKey.objects.values_list("key", flat=True)) == ["b"]


def test_dispatch_failure_is_logged_and_the_poller_recovers(
    sleeper: Inngest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(executor, "async_task", broken)
    (event_id,) = sleeper.send_sync(Event(name="m/go"))  # does not raise
    run = FunctionRun.objects.get(event_id=event_id)
    assert run.status == RunStatus.QUEUED
    assert "Could not enqueue" in caplog.text
    monkeypatch.undo()
    FunctionRun.objects.filter(pk=run.pk).update(
        dispatched_at=timezone.now() - timedelta(minutes=1)
    )
    assert poller.tick() == 1  # the poller finds it from its row and runs it (sync mode)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.wait_kind == "sleep"


def test_execute_runs_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(run_ids: list[str]) -> dict[str, str]:
        raise RuntimeError("bug")

    monkeypatch.setattr("django_inngest.engine.worker.advance_many", explode)
    ids = ["01JDJKGTGDVV4DTXHY6XYB7BKK", "01JDJKGTGDVV4DTXHY6XYB7BKM"]
    assert executor.execute_runs(ids) == dict.fromkeys(ids, "error")
    # A task enqueued by an earlier version carries one ID under the old name.
    assert executor.execute_run(ids[0]) == {ids[0]: "error"}


def test_worker_start_syncs_registrations(isolated_registry: Any) -> None:
    from django_inngest.models import FunctionRegistration

    client = Inngest(app_id="boot")

    @client.create_function(fn_id="f", trigger=TriggerEvent(event="boot/x"))
    def fn(ctx: Context) -> None:
        return None

    thread = poller.Poller()
    thread.stop()  # run() syncs first, then sees the stop flag and returns
    thread.run()
    assert FunctionRegistration.objects.filter(function_id="boot-f", is_active=True).exists()
