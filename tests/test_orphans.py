"""Runs whose worker died are taken by the next task a worker starts, ahead of its own runs
(``engine.recovery``); the backlog measurement with real workers is in ``test_recovery``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from django_inngest import Context, Event, Inngest, TriggerEvent
from django_inngest.engine import recovery, shutdown, worker
from django_inngest.models import FunctionRun, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def enabled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a django-q2 worker process, with the once-a-second limit lifted."""
    monkeypatch.setattr(recovery, "_enabled", True)
    monkeypatch.setattr(recovery, "_last_check", float("-inf"))
    monkeypatch.setattr(shutdown, "_stop_requested", threading.Event())
    yield


@pytest.fixture
def runs(inngest: Inngest, monkeypatch: pytest.MonkeyPatch) -> list[FunctionRun]:
    """Five runs of a one-step function, created but not dispatched."""
    monkeypatch.setattr("django_inngest.executor.dispatch", lambda ids: None)

    @inngest.create_function(fn_id="one", trigger=TriggerEvent(event="t/one"))
    def fn(ctx: Context) -> str:
        return ctx.step.run("only", lambda: "done")  # type: ignore[no-any-return]

    ids = inngest.send_sync([Event(name="t/one", data={"n": n}) for n in range(5)])
    by_event = {run.event_id: run for run in FunctionRun.objects.filter(event_id__in=ids)}
    return [by_event[event_id] for event_id in ids]


def orphan(run: FunctionRun, expired_seconds_ago: float) -> None:
    """As a worker that died holding the run leaves it."""
    now = timezone.now()
    FunctionRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        started_at=now - timedelta(seconds=60),
        lease_owner="dead-worker",
        lease_expires_at=now - timedelta(seconds=expired_seconds_ago),
    )


def test_orphans_come_first_oldest_expiry_first(enabled: None, runs: list[FunctionRun]) -> None:
    a, b, c, d, mine = runs
    orphan(a, 1)
    orphan(b, 5)
    # A live lease is not an orphan; nor is a run paused until later.
    FunctionRun.objects.filter(pk=c.pk).update(
        status=RunStatus.RUNNING,
        lease_owner="alive",
        lease_expires_at=timezone.now() + timedelta(seconds=5),
    )
    orphan(d, 1)
    FunctionRun.objects.filter(pk=d.pk).update(ready_at=timezone.now() + timedelta(hours=1))
    assert recovery.orphans_first([mine.run_id]) == [b.run_id, a.run_id, mine.run_id]


def test_a_process_looks_at_most_once_a_second(enabled: None, runs: list[FunctionRun]) -> None:
    orphan(runs[0], 1)
    assert recovery.orphans_first([runs[4].run_id]) == [runs[0].run_id, runs[4].run_id]
    orphan(runs[1], 1)
    assert recovery.orphans_first([runs[4].run_id]) == [runs[4].run_id]  # checked just now


def test_off_outside_worker_processes_and_while_stopping(
    runs: list[FunctionRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan(runs[0], 1)
    monkeypatch.setattr(recovery, "_last_check", float("-inf"))
    assert recovery.orphans_first([runs[4].run_id]) == [runs[4].run_id]  # sync mode, tests
    monkeypatch.setattr(recovery, "_enabled", True)
    stopping = threading.Event()
    stopping.set()
    monkeypatch.setattr(shutdown, "_stop_requested", stopping)
    assert recovery.orphans_first([runs[4].run_id]) == [runs[4].run_id]


def test_a_task_advances_the_orphans_with_its_own_runs(
    enabled: None, runs: list[FunctionRun]
) -> None:
    orphan(runs[0], 1)
    outcomes = worker.execute_runs([runs[4].run_id])
    assert outcomes == {runs[0].run_id: "completed", runs[4].run_id: "completed"}
    recovered = FunctionRun.objects.get(pk=runs[0].pk)
    assert recovered.status == RunStatus.COMPLETED
    assert recovered.attempt == 1  # the dead worker's attempt is charged to the run


def test_the_orphan_query_uses_the_lease_index(runs: list[FunctionRun]) -> None:
    """Cheap however many runs are queued or paused: only leased runs are in the index."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's; the index exists on both")
    query = recovery.orphaned(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a handful of rows: force the choice
        try:
            plan = query.explain()
        finally:
            cursor.execute("RESET enable_seqscan")
    assert "inngest_run_leased" in plan, plan


def died_inside(run: FunctionRun, step_id: str) -> None:
    """Rewind to "a worker died inside ``step_id``": recorded Running, the lease stale."""
    from django_inngest.models import StepRun, StepStatus

    StepRun.objects.filter(run=run, step_id=step_id).update(
        status=StepStatus.RUNNING,
        output=None,
        ended_at=None,
        attempt_log=[{"attempt": 1, "started_at": timezone.now().isoformat()}],
    )
    FunctionRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        output=None,
        ended_at=None,
        lease_owner="dead-worker",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        ready_at=timezone.now(),
    )


def test_a_parallel_branch_cut_off_by_a_crash_is_retried_in_the_same_turn(
    inngest: Inngest,
) -> None:
    """Its retry is due at once: pausing would send the run behind the broker's backlog."""
    calls: list[str] = []

    @inngest.create_function(fn_id="fan", trigger=TriggerEvent(event="t/fan"), retries=2)
    def fn(ctx: Context) -> tuple[str, ...]:
        return ctx.group.parallel(
            (
                lambda: ctx.step.run("left", lambda: calls.append("left") or "L"),
                lambda: ctx.step.run("right", lambda: calls.append("right") or "R"),
            )
        )

    inngest.send_sync(Event(name="t/fan"))
    run = FunctionRun.objects.get(function__function_id="test-app-fan")
    died_inside(run, "right")
    calls.clear()
    assert worker.advance(run.run_id) == "completed"
    run.refresh_from_db()
    assert run.output == ["L", "R"] and calls == ["right"]
    right = run.steps.get(step_id="right")
    assert right.attempts == 2
    assert right.attempt_log[0]["error"]["name"] == "WorkerLostError"
