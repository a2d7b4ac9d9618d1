"""A stopping worker, in process: it starts nothing, yields its runs at their next step, hands
back the leases of steps still in flight after the grace period, and then leaves (or waits for
its cluster's end-of-work message). The real signals are in ``test_worker_stop``."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_inngest import Context, Event, Inngest, TriggerEvent
from django_inngest.engine import shutdown, worker
from django_inngest.engine.leases import lease_keeper
from django_inngest.models import FunctionRun, RunStatus, StepStatus, WaitKind
from tests.qcluster import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stop(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """This process's stop flag, fresh for the test (SIGTERM sets it in a worker)."""
    flag = threading.Event()
    monkeypatch.setattr(shutdown, "_stop_requested", flag)
    return flag


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Runs dispatched (after commit), instead of executed inline by sync mode."""
    sent: list[str] = []
    monkeypatch.setattr("django_inngest.executor.dispatch", lambda ids: sent.extend(ids))
    return sent


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []
    monkeypatch.setattr(shutdown.os, "_exit", codes.append)
    return codes


def send(inngest: Inngest, name: str) -> FunctionRun:
    (event_id,) = inngest.send_sync(Event(name=name))
    return FunctionRun.objects.get(event_id=event_id)


def test_a_stopping_worker_yields_a_run_at_its_next_step(
    inngest: Inngest, stop: threading.Event, dispatched: list[str]
) -> None:
    @inngest.create_function(fn_id="three", trigger=TriggerEvent(event="t/three"))
    def fn(ctx: Context) -> None:
        ctx.step.run("one", lambda: 1)
        ctx.step.run("two", lambda: stop.set() or 2)  # SIGTERM arrives during step two
        ctx.step.run("three", lambda: 3)

    run = send(inngest, "t/three")
    dispatched.clear()
    assert worker.advance(run.run_id) == "paused"
    run.refresh_from_db()
    # Step two finished and is committed; the run is free, ready now, and dispatched again.
    assert dict(run.steps.values_list("step_id", "status")) == {
        "one": StepStatus.COMPLETED,
        "two": StepStatus.COMPLETED,
    }
    assert (run.status, run.lease_owner, run.wait_kind) == (RunStatus.RUNNING, "", WaitKind.NONE)
    assert run.ready_at is not None and run.ready_at <= timezone.now()
    assert dispatched == [run.run_id]


def test_a_stopping_worker_starts_no_run(
    inngest: Inngest, stop: threading.Event, dispatched: list[str]
) -> None:
    @inngest.create_function(fn_id="never", trigger=TriggerEvent(event="t/never"))
    def fn(ctx: Context) -> None:
        raise AssertionError("a stopping worker started a run")

    run = send(inngest, "t/never")
    dispatched.clear()
    stop.set()
    assert worker.execute_runs([run.run_id]) == {run.run_id: "handed back"}
    run.refresh_from_db()
    assert (run.status, run.started_at, run.lease_owner) == (RunStatus.QUEUED, None, "")
    assert dispatched == [run.run_id]


def test_runs_claimed_with_a_batch_but_not_started_go_back_at_once(
    inngest: Inngest, stop: threading.Event, dispatched: list[str], settings: Any
) -> None:
    settings.DJANGO_INNGEST_THREADS_PER_WORKER = 1  # one after the other, as on SQLite

    @inngest.create_function(fn_id="batch", trigger=TriggerEvent(event="t/batch"))
    def fn(ctx: Context) -> None:
        ctx.step.run("only", lambda: stop.set())

    first, second = send(inngest, "t/batch"), send(inngest, "t/batch")
    dispatched.clear()
    outcomes = worker.advance_many([first.run_id, second.run_id])
    assert outcomes[second.run_id] == "deferred"
    second.refresh_from_db()
    assert (second.status, second.started_at, second.lease_owner) == (RunStatus.QUEUED, None, "")
    assert second.run_id in dispatched


def advance_in_a_thread(run: FunctionRun, outcome: list[str]) -> threading.Thread:
    """Advance the run on another thread, as a worker would; its outcome lands in ``outcome``."""

    def work() -> None:
        try:
            outcome.append(worker.advance(run.run_id))
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_the_leases_of_steps_still_in_flight_are_handed_back(
    inngest: Inngest, dispatched: list[str]
) -> None:
    proceed = threading.Event()
    calls: list[str] = []

    @inngest.create_function(fn_id="stuck", trigger=TriggerEvent(event="t/stuck"))
    def fn(ctx: Context) -> str:
        return ctx.step.run("slow", lambda: calls.append("slow") or (proceed.wait(10) and "late"))  # type: ignore[no-any-return]

    run = send(inngest, "t/stuck")
    outcome: list[str] = []
    thread = advance_in_a_thread(run, outcome)
    try:
        held = wait_until(lease_keeper.held, 5, "the step to hold its run's lease")
        assert [run_id for run_id, _ in held] == [run.run_id]
        dispatched.clear()
        assert shutdown.hand_back(held) == [run.run_id]
        run.refresh_from_db()
        assert (run.lease_owner, run.lease_expires_at) == ("", None)
        assert run.ready_at is not None and run.ready_at <= timezone.now()
        assert dispatched == [run.run_id]
        assert shutdown.hand_back(held) == []  # no longer ours: nothing to hand back
    finally:
        proceed.set()
        thread.join(10)
    # The stopped worker's late result is dropped; another worker runs the step again.
    assert outcome == ["abandoned"]
    assert not run.steps.filter(status=StepStatus.COMPLETED).exists()
    assert worker.advance(run.run_id) == "completed"
    assert calls == ["slow", "slow"]


@pytest.fixture
def no_stop_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``install`` without its stop thread; the SIGTERM handler is put back afterwards."""
    monkeypatch.setattr(shutdown, "_stop_when_requested", lambda: None)
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_begins_the_stop(stop: threading.Event, no_stop_thread: None) -> None:
    shutdown.install()
    os.kill(os.getpid(), signal.SIGTERM)
    assert wait_until(shutdown.stopping, 5, "SIGTERM to set the stop flag")


def run_stop_thread() -> float:
    started = time.monotonic()
    thread = threading.Thread(target=shutdown._stop_when_requested)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return time.monotonic() - started


def test_after_the_grace_period_a_stuck_worker_hands_back_and_leaves(
    inngest: Inngest, stop: threading.Event, exits: list[int], dispatched: list[str], settings: Any
) -> None:
    settings.DJANGO_INNGEST_STOP_GRACE_SECONDS = 0.3
    proceed = threading.Event()

    @inngest.create_function(fn_id="stuck2", trigger=TriggerEvent(event="t/stuck2"))
    def fn(ctx: Context) -> None:
        ctx.step.run("slow", lambda: proceed.wait(10))

    run = send(inngest, "t/stuck2")
    outcome: list[str] = []
    thread = advance_in_a_thread(run, outcome)
    try:
        wait_until(lease_keeper.held, 5, "the step to hold its run's lease")
        dispatched.clear()
        stop.set()
        assert run_stop_thread() >= 0.3  # the step had its grace period
        assert exits == [0]  # it still runs, and its result would be dropped: leave
        run.refresh_from_db()
        assert run.lease_owner == "" and dispatched == [run.run_id]
    finally:
        proceed.set()
        thread.join(10)
    assert outcome == ["abandoned"]


def test_steps_that_end_within_the_grace_period_are_kept(
    inngest: Inngest, stop: threading.Event, exits: list[int], dispatched: list[str], settings: Any
) -> None:
    settings.DJANGO_INNGEST_STOP_GRACE_SECONDS = 5
    proceed = threading.Event()

    @inngest.create_function(fn_id="nearly", trigger=TriggerEvent(event="t/nearly"))
    def fn(ctx: Context) -> None:
        ctx.step.run("slow", lambda: proceed.wait(10) and "kept")
        ctx.step.run("next", lambda: "not now")

    run = send(inngest, "t/nearly")
    outcome: list[str] = []
    thread = advance_in_a_thread(run, outcome)
    wait_until(lease_keeper.held, 5, "the step to hold its run's lease")
    stop.set()
    stopper = threading.Thread(target=run_stop_thread)
    stopper.start()
    proceed.set()  # the step ends within the grace period
    thread.join(10)
    stopper.join(10)
    assert outcome == ["paused"]  # committed, then yielded before the next step
    assert dict(run.steps.values_list("step_id", "output")) == {"slow": "kept"}
    assert exits == [0]  # nothing in flight; no cluster stop in progress: it leaves


def test_an_idle_worker_leaves_unless_its_cluster_is_stopping(
    stop: threading.Event, exits: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    stop.set()
    # django-q2 sent SIGTERM (a task timeout) or the process was signalled alone: it leaves.
    run_stop_thread()
    assert exits == [0]
    # inngest_worker is stopping its cluster: the worker takes the end-of-work message instead.
    monkeypatch.setattr("django_inngest.executor.cluster_is_stopping", lambda: True)
    run_stop_thread()
    assert exits == [0]


def test_only_runs_the_process_holds_are_listed(inngest: Inngest) -> None:
    assert lease_keeper.held() == []
    with lease_keeper.watch("run-a", "owner-1"), lease_keeper.watch("run-a", "owner-1"):
        with lease_keeper.watch("run-b", "owner-2"):
            assert lease_keeper.held() == [("run-a", "owner-1"), ("run-b", "owner-2")]
        assert lease_keeper.held() == [("run-a", "owner-1")]
    assert lease_keeper.held() == []


def test_the_keeper_renews_a_lease_for_the_whole_turn(
    inngest: Inngest, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only during long steps: handler code between steps, and runs waiting their turn."""
    settings.DJANGO_INNGEST_LEASE_SECONDS = 0.6  # the keeper renews after 0.2 s, every 0.1 s
    proceed = threading.Event()

    @inngest.create_function(fn_id="thinker", trigger=TriggerEvent(event="t/thinker"))
    def fn(ctx: Context) -> str:
        ctx.step.run("quick", lambda: 1)
        proceed.wait(10)  # slow code outside any step
        return "done"

    from tests.helpers import start_in_a_worker_thread

    run, thread = start_in_a_worker_thread(inngest, "t/thinker", monkeypatch)
    try:
        wait_until(lambda: run.steps.filter(step_id="quick").exists(), 5, "the quick step")
        first = FunctionRun.objects.get(pk=run.pk).lease_expires_at
        wait_until(
            lambda: FunctionRun.objects.get(pk=run.pk).lease_expires_at != first, 5, "a renewal"
        )
        time.sleep(0.7)  # longer than the lease itself
        current = FunctionRun.objects.get(pk=run.pk)
        assert current.lease_expires_at is not None and current.lease_expires_at > timezone.now()
    finally:
        proceed.set()
        thread.join(10)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
