"""Step semantics beyond test_engine: retry backoff in the engine, default retries, no system
event recursion, step IDs across replay, handler-level NonRetriable/RetryAfter
errors, sleep limits, documented defaults, indexed waits and several steps per worker task.

As in test_engine, django-q2 runs in sync mode (except where a test says otherwise): sending an
event runs its functions inline up to the first pause; ``drain`` advances what is due after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db.models import QuerySet
from django.utils import timezone

from django_inngest import (
    Context,
    Event,
    Inngest,
    NonRetriableError,
    RetryAfterError,
    TriggerEvent,
    executor,
    matching,
)
from django_inngest.conf import settings as inngest_settings
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, RunStatus, StepStatus, WaitKind
from django_inngest.testing import drain
from tests.helpers import make_due, only_run

pytestmark = pytest.mark.django_db(transaction=True)


def runs_of(function_id: str) -> QuerySet[FunctionRun]:
    return FunctionRun.objects.filter(function__function_id=function_id)


def error_of(run: FunctionRun) -> dict[str, Any]:
    assert isinstance(run.error, dict), run.error
    return run.error


def recorded(calls: list[int], value: int) -> int:
    """A step body: note that it ran, return ``value``."""
    calls.append(value)
    return value


def assert_delay_between(
    when: datetime | None, low: float, high: float, before: datetime, after: datetime
) -> None:
    """``when`` is ``now + delay`` with ``low <= delay <= high``, for some ``now`` in the window
    [before, after] during which it was computed."""
    assert when is not None
    assert before + timedelta(seconds=low) <= when <= after + timedelta(seconds=high), (
        (when - before).total_seconds(),
        (when - after).total_seconds(),
    )


# -- 1. retry backoff, as the engine applies it -------------------------------------------------


def test_engine_schedules_step_retries_with_exponential_jittered_backoff(
    inngest: Inngest, settings: Any
) -> None:
    settings.DJANGO_INNGEST_RETRY_BACKOFF_SECONDS = 10
    settings.DJANGO_INNGEST_RETRY_BACKOFF_MAX_SECONDS = 600

    @inngest.create_function(fn_id="backoff", trigger=TriggerEvent(event="t/backoff"), retries=5)
    def fn(ctx: Context) -> None:
        ctx.step.run("bad", lambda: 1 / 0)

    before = timezone.now()
    inngest.send_sync(Event(name="t/backoff"))
    after = timezone.now()
    run = only_run("test-app-backoff")
    step = run.steps.get()
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.RETRY)
    assert step.status == StepStatus.RETRYING and step.attempts == 1
    assert run.ready_at == step.wake_at
    # First retry: base·2^0 = 10 s, times 0.5 to 1.0.
    assert_delay_between(run.ready_at, 5, 10, before, after)

    make_due(run)
    before = timezone.now()
    drain()
    after = timezone.now()
    run.refresh_from_db()
    step.refresh_from_db()
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.RETRY)
    assert step.status == StepStatus.RETRYING and step.attempts == 2
    assert run.ready_at == step.wake_at
    # Second retry: base·2^1 = 20 s, times 0.5 to 1.0.
    assert_delay_between(run.ready_at, 10, 20, before, after)


# -- 2. default retries --------------------------------------------------------------------------


def test_a_function_without_retries_gets_four_retries_per_step(inngest: Inngest) -> None:
    calls: list[int] = []

    def always_fails() -> None:
        calls.append(1)
        raise ValueError(f"failure {len(calls)}")

    @inngest.create_function(fn_id="default", trigger=TriggerEvent(event="t/default"))
    def fn(ctx: Context) -> None:
        ctx.step.run("bad", always_fails)

    inngest.send_sync(Event(name="t/default"))
    run = only_run("test-app-default")
    for _ in range(10):  # more rounds than needed: the run must stop by itself
        run.refresh_from_db()
        if run.status != RunStatus.RUNNING:
            break
        make_due(run)
        drain()
    run.refresh_from_db()
    step = run.steps.get()
    assert run.status == RunStatus.FAILED
    assert error_of(run)["name"] == "ValueError" and error_of(run)["message"] == "failure 5"
    assert step.status == StepStatus.FAILED
    assert step.attempts == 5  # DEFAULT_RETRIES (4) + the first attempt
    assert len(calls) == 5
    assert len(step.attempt_log) == 5


# -- 3. no recursion from system events ------------------------------------------------------------


def test_a_failing_on_failure_handler_emits_no_further_failed_event(inngest: Inngest) -> None:
    failure_calls: list[str] = []

    def on_failure(ctx: Context) -> None:
        failure_calls.append(ctx.event.data["run_id"])
        raise NonRetriableError("the failure handler broke too")

    @inngest.create_function(
        fn_id="src", trigger=TriggerEvent(event="t/src"), retries=0, on_failure=on_failure
    )
    def fn(ctx: Context) -> None:
        raise NonRetriableError("original failure")

    inngest.send_sync(Event(name="t/src"))
    drain()
    run = only_run("test-app-src")
    assert run.status == RunStatus.FAILED
    failure_run = only_run("test-app-src-failure")  # exactly one failure run
    assert failure_run.status == RunStatus.FAILED
    assert error_of(failure_run)["name"] == "NonRetriableError"
    assert failure_calls == [run.run_id]
    # One function.failed event: the original run's. The failure run emitted none.
    failed = StoredEvent.objects.filter(name="inngest/function.failed")
    assert [e.data["function_id"] for e in failed] == ["test-app-src"]
    assert failed.get().data["run_id"] == run.run_id
    finished = StoredEvent.objects.filter(name="inngest/function.finished")
    assert [e.data["function_id"] for e in finished] == ["test-app-src"]
    assert not runs_of("test-app-src-failure-failure").exists()
    assert set(FunctionRun.objects.values_list("function_id", flat=True)) == {
        "test-app-src",
        "test-app-src-failure",
    }
    assert FunctionRun.objects.count() == 2


def test_a_function_triggered_by_function_finished_does_not_loop(inngest: Inngest) -> None:
    seen: list[str] = []

    @inngest.create_function(fn_id="src", trigger=TriggerEvent(event="t/src"))
    def src(ctx: Context) -> str:
        return "source done"

    @inngest.create_function(
        fn_id="watcher",
        trigger=TriggerEvent(
            event="inngest/function.finished",
            expression="event.data.function_id == 'test-app-src'",
        ),
    )
    def watcher(ctx: Context) -> str:
        seen.append(ctx.event.data["run_id"])
        return "watched"

    inngest.send_sync(Event(name="t/src"))
    drain()
    source = only_run("test-app-src")
    assert source.status == RunStatus.COMPLETED
    watcher_run = only_run("test-app-watcher")  # once per source run
    assert watcher_run.status == RunStatus.COMPLETED and watcher_run.output == "watched"
    assert seen == [source.run_id]
    assert watcher_run.event.name == "inngest/function.finished"
    # Exactly one finished event, the source's: the watcher's own run emitted none.
    finished = StoredEvent.objects.filter(name="inngest/function.finished")
    assert finished.count() == 1
    assert finished.get().data["function_id"] == "test-app-src"
    assert finished.get().data["run_id"] == source.run_id
    assert FunctionRun.objects.count() == 2

    # A second source run gets its own (single) watcher run, and still no loop.
    inngest.send_sync(Event(name="t/src"))
    drain()
    assert runs_of("test-app-src").count() == 2
    assert runs_of("test-app-watcher").count() == 2
    finished_for = StoredEvent.objects.filter(name="inngest/function.finished")
    assert sorted(e.data["function_id"] for e in finished_for) == ["test-app-src"] * 2
    assert sorted(seen) == sorted(runs_of("test-app-src").values_list("run_id", flat=True))


# -- 5. step ID counters across replay ------------------------------------------------------------


def test_repeated_step_ids_keep_their_counters_across_replay(inngest: Inngest) -> None:
    calls: list[int] = []

    @inngest.create_function(fn_id="counters", trigger=TriggerEvent(event="t/counters"))
    def fn(ctx: Context) -> list[int]:
        results = [ctx.step.run("same", recorded, calls, i) for i in range(3)]
        ctx.step.sleep("nap", timedelta(seconds=30))
        results.append(ctx.step.run("same", recorded, calls, 3))
        return results

    inngest.send_sync(Event(name="t/counters"))
    run = only_run("test-app-counters")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.SLEEP)
    assert calls == [0, 1, 2]
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.output == [0, 1, 2, 3]
    assert calls == [0, 1, 2, 3]  # each of the first three ran once; replay used the memo
    steps = list(run.steps.order_by("position").values_list("step_id", "kind", "attempts"))
    assert steps == [
        ("same", "run", 1),
        ("same:1", "run", 1),
        ("same:2", "run", 1),
        ("nap", "sleep", 0),
        ("same:3", "run", 1),
    ]


# -- 6. NonRetriableError and RetryAfterError raised by the handler body -------------------------


def test_non_retriable_error_in_the_handler_body_fails_the_run_at_once(inngest: Inngest) -> None:
    calls: list[int] = []

    @inngest.create_function(fn_id="bodynre", trigger=TriggerEvent(event="t/bodynre"), retries=3)
    def fn(ctx: Context) -> None:
        calls.append(ctx.attempt)
        raise NonRetriableError("give up now")

    inngest.send_sync(Event(name="t/bodynre"))
    drain()
    run = only_run("test-app-bodynre")
    assert run.status == RunStatus.FAILED
    assert run.attempt == 0
    assert run.ready_at is None and run.wait_kind == WaitKind.NONE
    assert (
        error_of(run)["name"] == "NonRetriableError" and error_of(run)["message"] == "give up now"
    )
    assert calls == [0]


def test_retry_after_error_in_the_handler_body_delays_the_retry(inngest: Inngest) -> None:
    calls: list[int] = []

    @inngest.create_function(fn_id="bodyra", trigger=TriggerEvent(event="t/bodyra"), retries=3)
    def fn(ctx: Context) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt == 0:
            raise RetryAfterError("later", retry_after=timedelta(seconds=42))
        return f"ok on attempt {ctx.attempt}"

    before = timezone.now()
    inngest.send_sync(Event(name="t/bodyra"))
    after = timezone.now()
    run = only_run("test-app-bodyra")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.RETRY)
    assert run.attempt == 1
    assert_delay_between(run.ready_at, 42, 42, before, after)
    assert drain() == 0  # not due yet
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.output == "ok on attempt 1"
    assert calls == [0, 1]


# -- 7. sleep limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_sleep",
    [
        # Any positive duration is a sleep (tests/test_async_port.py); zero or less is an error.
        pytest.param(lambda ctx: ctx.step.sleep("s", timedelta(0)), id="sleep-0"),
        pytest.param(lambda ctx: ctx.step.sleep("s", -5), id="sleep-negative-ms"),
        pytest.param(lambda ctx: ctx.step.sleep("s", timedelta(days=366)), id="sleep-366d"),
        pytest.param(lambda ctx: ctx.step.sleep_until("s", "tomorrow"), id="sleep_until-str"),
        pytest.param(
            lambda ctx: ctx.step.sleep_until("s", timezone.now() + timedelta(days=366)),
            id="sleep_until-366d",
        ),
    ],
)
def test_out_of_range_sleeps_fail_the_run_with_configuration_error(
    inngest: Inngest, bad_sleep: Callable[[Context], None]
) -> None:
    # A ConfigurationError raised in the handler is an ordinary handler error (it is not a
    # NonRetriableError): with retries=0 the run fails on this first attempt.
    @inngest.create_function(fn_id="badsleep", trigger=TriggerEvent(event="t/bad"), retries=0)
    def fn(ctx: Context) -> None:
        bad_sleep(ctx)

    inngest.send_sync(Event(name="t/bad"))
    run = only_run("test-app-badsleep")
    assert run.status == RunStatus.FAILED
    assert error_of(run)["name"] == "ConfigurationError"
    assert not run.steps.exists()  # no sleep step was recorded


def test_sleep_until_pauses_until_that_time_then_completes(inngest: Inngest) -> None:
    target = timezone.now() + timedelta(seconds=2)

    @inngest.create_function(fn_id="until", trigger=TriggerEvent(event="t/until"))
    def fn(ctx: Context) -> str:
        ctx.step.sleep_until("wake", target)
        return "woke"

    inngest.send_sync(Event(name="t/until"))
    run = only_run("test-app-until")
    step = run.steps.get()
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.SLEEP)
    assert step.step_id == "wake" and step.status == StepStatus.SLEEPING
    assert step.wake_at == target
    assert run.ready_at == target
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.output == "woke"
    assert run.steps.get().status == StepStatus.COMPLETED


# -- 8. documented defaults -----------------------------------------------------------------------


def test_documented_defaults() -> None:
    assert inngest_settings.MAX_STEP_OUTPUT_BYTES == 4 * 1024 * 1024
    assert inngest_settings.DEFAULT_RETRIES == 4
    lease = float(inngest_settings.LEASE_SECONDS)
    redispatch = float(inngest_settings.REDISPATCH_AFTER_SECONDS)
    poll = float(inngest_settings.TIMER_POLL_SECONDS)
    # A crashed worker's run, or a lost wake-up, is picked up again within 60 s by default.
    assert lease + poll <= 60
    assert redispatch + poll <= 60


# -- 9. indexed waits ------------------------------------------------------------------------------


def test_wait_for_event_with_match_stores_an_indexed_listener(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="indexed", trigger=TriggerEvent(event="t/order"))
    def fn(ctx: Context) -> Any:
        got = ctx.step.wait_for_event(
            "paid", event="t/paid", match="data.order", timeout=timedelta(hours=1)
        )
        return got.data if got else None

    inngest.send_sync(Event(name="t/order", data={"order": "A-1"}))
    run = only_run("test-app-indexed")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.EVENT)
    listener = run.listeners.get()
    assert listener.match_key is not None
    assert listener.match_key == matching.key_for_expression(listener.expression)
    # The indexed listener is found by a matching event, and only by one.
    inngest.send_sync(Event(name="t/paid", data={"order": "B-2"}))
    run.refresh_from_db()
    assert run.wait_kind == WaitKind.EVENT
    inngest.send_sync(Event(name="t/paid", data={"order": "A-1"}))
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.output == {"order": "A-1"}


# -- 10. several steps in one worker task ------------------------------------------------------


def test_a_worker_task_runs_several_steps(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_q.conf import Conf

    tasks: list[tuple[str, tuple[Any, ...]]] = []

    def record(name: str, *args: Any, **kwargs: Any) -> str:
        tasks.append((name, args))
        return "task-id"

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(executor, "async_task", record)
    calls: list[int] = []

    @inngest.create_function(fn_id="five", trigger=TriggerEvent(event="t/five"))
    def fn(ctx: Context) -> int:
        return sum(ctx.step.run(f"s{i}", recorded, calls, i) for i in range(5))

    inngest.send_sync(Event(name="t/five"))
    run = only_run("test-app-five")
    assert run.status == RunStatus.QUEUED  # nothing ran inline
    assert calls == []
    assert len(tasks) == 1
    name, args = tasks[0]
    assert name == executor.TASK
    assert args == ([run.run_id],)

    outcomes = executor.execute_runs(*args)
    assert outcomes == {run.run_id: "completed"}
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.output == 10
    assert calls == [0, 1, 2, 3, 4]
    assert run.steps.filter(status=StepStatus.COMPLETED).count() == 5
    assert len(tasks) == 1  # all five steps ran in that one task; nothing was re-enqueued
