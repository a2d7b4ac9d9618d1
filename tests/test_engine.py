"""Execution semantics, with django-q2 in sync mode: sending an event runs its functions inline
(up to the first pause); ``drain`` advances whatever is due afterwards."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_inngest import (
    Context,
    Event,
    Inngest,
    NonRetriableError,
    RetryAfterError,
    StepError,
    TriggerEvent,
    poller,
)
from django_inngest.engine import retries
from django_inngest.engine import worker as engine
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, RunStatus, StepRun, StepStatus, WaitKind
from django_inngest.testing import drain
from tests.helpers import claim_again, make_due, only_run, start_in_a_worker_thread
from tests.qcluster import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_steps_run_once_each_and_output_is_stored(inngest: Inngest) -> None:
    calls: list[str] = []

    @inngest.create_function(fn_id="five", trigger=TriggerEvent(event="t/five"))
    def five(ctx: Context) -> int:
        total = 0
        for i in range(5):
            total += ctx.step.run(f"s{i}", lambda i=i: calls.append(f"s{i}") or i)
        return total

    inngest.send_sync(Event(name="t/five"))
    run = only_run("test-app-five")
    assert run.status == RunStatus.COMPLETED
    assert run.output == 10
    assert calls == ["s0", "s1", "s2", "s3", "s4"]
    steps = list(run.steps.values_list("step_id", "status", "attempts", "output"))
    assert steps == [(f"s{i}", "Completed", 1, i) for i in range(5)]
    assert run.started_at is not None and run.ended_at is not None


def test_memoized_steps_are_not_rerun_after_a_sleep(inngest: Inngest) -> None:
    calls: list[str] = []

    @inngest.create_function(fn_id="sleepy", trigger=TriggerEvent(event="t/sleepy"))
    def sleepy(ctx: Context) -> str:
        a = ctx.step.run("a", lambda: calls.append("a") or "A")
        ctx.step.sleep("nap", timedelta(seconds=30))
        b = ctx.step.run("b", lambda: calls.append("b") or "B")
        return a + b

    inngest.send_sync(Event(name="t/sleepy"))
    run = only_run("test-app-sleepy")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.SLEEP)
    assert run.ready_at is not None and run.ready_at > timezone.now() + timedelta(seconds=25)
    assert drain() == 0  # not due yet: nothing happens
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.output == "AB"
    assert calls == ["a", "b"]


def test_repeated_step_ids_get_counters(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="rep", trigger=TriggerEvent(event="t/rep"))
    def rep(ctx: Context) -> list[int]:
        return [ctx.step.run("same", lambda i=i: i) for i in range(3)]

    inngest.send_sync(Event(name="t/rep"))
    run = only_run("test-app-rep")
    assert run.output == [0, 1, 2]
    assert list(run.steps.values_list("step_id", flat=True)) == ["same", "same:1", "same:2"]


def test_step_retries_then_succeeds(inngest: Inngest) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError(f"boom {len(attempts)}")
        return "ok"

    @inngest.create_function(fn_id="flaky", trigger=TriggerEvent(event="t/flaky"), retries=4)
    def fn(ctx: Context) -> str:
        return ctx.step.run("flaky", flaky)  # type: ignore[no-any-return]

    inngest.send_sync(Event(name="t/flaky"))
    run = only_run("test-app-flaky")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.RETRY)
    step = run.steps.get()
    assert step.status == StepStatus.RETRYING and step.attempts == 1
    for _ in range(2):
        make_due(run)
        drain()
    run.refresh_from_db()
    step.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.output == "ok"
    assert step.attempts == 3
    assert [entry.get("error", {}).get("message") for entry in step.attempt_log] == [
        "boom 1",
        "boom 2",
        None,
    ]


def test_backoff_grows_exponentially_with_jitter(settings: Any) -> None:
    settings.DJANGO_INNGEST_RETRY_BACKOFF_SECONDS = 1.0
    settings.DJANGO_INNGEST_RETRY_BACKOFF_MAX_SECONDS = 100.0
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (8, 100.0)]:
        delays = [retries.backoff_seconds(attempt) for _ in range(50)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_exhausted_retries_raise_step_error_the_handler_can_catch(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="catch", trigger=TriggerEvent(event="t/catch"), retries=1)
    def fn(ctx: Context) -> str:
        try:
            ctx.step.run("bad", lambda: 1 / 0)
        except StepError as err:
            return f"caught {err.name}: {err.message}"
        return "not reached"

    inngest.send_sync(Event(name="t/catch"))
    run = only_run("test-app-catch")
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.output == "caught ZeroDivisionError: division by zero"
    assert run.steps.get().attempts == 2


def test_uncaught_step_failure_fails_the_run(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="fails", trigger=TriggerEvent(event="t/fails"), retries=0)
    def fn(ctx: Context) -> None:
        ctx.step.run("bad", lambda: 1 / 0)

    inngest.send_sync(Event(name="t/fails"))
    run = only_run("test-app-fails")
    assert run.status == RunStatus.FAILED
    assert run.error["name"] == "ZeroDivisionError"
    assert run.error["message"] == "division by zero"


def test_non_retriable_error_fails_at_once(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="nre", trigger=TriggerEvent(event="t/nre"), retries=5)
    def fn(ctx: Context) -> None:
        ctx.step.run("bad", lambda: (_ for _ in ()).throw(NonRetriableError("no point")))

    inngest.send_sync(Event(name="t/nre"))
    run = only_run("test-app-nre")
    assert run.status == RunStatus.FAILED
    assert run.steps.get().attempts == 1
    assert run.error["message"] == "no point"


def test_retry_after_error_sets_the_delay(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="ra", trigger=TriggerEvent(event="t/ra"))
    def fn(ctx: Context) -> None:
        def limited() -> None:
            raise RetryAfterError("rate limited", timedelta(minutes=10))

        ctx.step.run("call", limited)

    inngest.send_sync(Event(name="t/ra"))
    run = only_run("test-app-ra")
    assert run.wait_kind == WaitKind.RETRY
    assert run.ready_at is not None
    delay = (run.ready_at - timezone.now()).total_seconds()
    assert 590 < delay <= 600


def test_handler_error_outside_steps_is_retried_then_fails(inngest: Inngest) -> None:
    seen: list[int] = []

    @inngest.create_function(fn_id="body", trigger=TriggerEvent(event="t/body"), retries=2)
    def fn(ctx: Context) -> None:
        seen.append(ctx.attempt)
        raise RuntimeError("body error")

    inngest.send_sync(Event(name="t/body"))
    run = only_run("test-app-body")
    for _ in range(2):
        make_due(run)
        drain()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert seen == [0, 1, 2]


def test_step_output_must_be_json(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="nojson", trigger=TriggerEvent(event="t/nojson"))
    def fn(ctx: Context) -> None:
        ctx.step.run("obj", lambda: object())

    inngest.send_sync(Event(name="t/nojson"))
    run = only_run("test-app-nojson")
    assert run.status == RunStatus.FAILED
    assert "not JSON-serialisable" in run.error["message"]


def test_step_output_size_limit(inngest: Inngest, settings: Any) -> None:
    settings.DJANGO_INNGEST_MAX_STEP_OUTPUT_BYTES = 100

    @inngest.create_function(fn_id="big", trigger=TriggerEvent(event="t/big"))
    def fn(ctx: Context) -> None:
        ctx.step.run("big", lambda: "x" * 200)

    inngest.send_sync(Event(name="t/big"))
    run = only_run("test-app-big")
    assert run.status == RunStatus.FAILED
    assert "over the 100 byte limit" in run.error["message"]


def test_wait_for_event_matches(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="wait", trigger=TriggerEvent(event="t/order.created"))
    def fn(ctx: Context) -> Any:
        paid = ctx.step.wait_for_event(
            "paid",
            event="t/order.paid",
            if_exp="event.data.order == async.data.order",
            timeout=timedelta(hours=1),
        )
        return paid.data if paid else None

    inngest.send_sync(Event(name="t/order.created", data={"order": 1}))
    run = only_run("test-app-wait")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.EVENT)
    inngest.send_sync(Event(name="t/order.paid", data={"order": 2, "n": "other"}))
    run.refresh_from_db()
    assert run.wait_kind == WaitKind.EVENT
    inngest.send_sync(Event(name="t/order.paid", data={"order": 1, "n": "mine"}))
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.output == {"order": 1, "n": "mine"}
    assert not run.listeners.exists()


def test_wait_for_event_match_shorthand_and_timeout(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="timeout", trigger=TriggerEvent(event="t/start"))
    def fn(ctx: Context) -> str:
        got = ctx.step.wait_for_event("w", event="t/reply", match="data.id", timeout=60_000)
        return "timed out" if got is None else "got it"

    inngest.send_sync(Event(name="t/start", data={"id": "x"}))
    run = only_run("test-app-timeout")
    listener = run.listeners.get()
    assert "event." not in listener.expression and '"x"' in listener.expression
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.output == "timed out"
    assert not run.listeners.exists()
    # A late event no longer resumes anything.
    inngest.send_sync(Event(name="t/reply", data={"id": "x"}))
    run.refresh_from_db()
    assert run.output == "timed out"


def test_send_event_step_is_memoized_with_the_events(inngest: Inngest) -> None:
    received: list[str] = []

    @inngest.create_function(fn_id="sender", trigger=TriggerEvent(event="t/send"))
    def sender(ctx: Context) -> list[str]:
        ids = ctx.step.send_event("fanout", [Event(name="t/child", data={"n": 1})])
        ctx.step.sleep("pause", timedelta(seconds=5))
        return ids

    @inngest.create_function(fn_id="child", trigger=TriggerEvent(event="t/child"))
    def child(ctx: Context) -> None:
        received.append(ctx.event.data["n"])

    inngest.send_sync(Event(name="t/send"))
    run = only_run("test-app-sender")
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert StoredEvent.objects.filter(name="t/child").count() == 1  # replay did not resend
    assert run.output == [StoredEvent.objects.get(name="t/child").internal_id]
    assert received == [1]


def test_invoke_returns_child_output_and_child_failure_raises(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="double", trigger=TriggerEvent(event="t/never"))
    def double(ctx: Context) -> int:
        return int(ctx.event.data["n"]) * 2

    @inngest.create_function(fn_id="broken", trigger=TriggerEvent(event="t/never"), retries=0)
    def broken(ctx: Context) -> None:
        raise NonRetriableError("child broke")

    @inngest.create_function(fn_id="parent", trigger=TriggerEvent(event="t/parent"))
    def parent(ctx: Context) -> dict[str, Any]:
        result = ctx.step.invoke("double", function=double, data={"n": 21})
        try:
            ctx.step.invoke("broken", function=broken, data={})
        except StepError as err:
            return {"result": result, "error": err.message}
        return {"result": result}

    inngest.send_sync(Event(name="t/parent"))
    drain()
    run = only_run("test-app-parent")
    assert run.status == RunStatus.COMPLETED
    assert run.output == {"result": 42, "error": "child broke"}
    child = only_run("test-app-double")
    assert child.parent_run_id == run.run_id and child.event.name == "inngest/function.invoked"


def test_parallel_returns_results_in_order(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="par", trigger=TriggerEvent(event="t/par"))
    def fn(ctx: Context) -> list[str]:
        return list(
            ctx.group.parallel(
                (lambda: ctx.step.run("a", lambda: "A"), lambda: ctx.step.run("b", lambda: "B"))
            )
        )

    inngest.send_sync(Event(name="t/par"))
    assert only_run("test-app-par").output == ["A", "B"]


def test_logger_is_silent_during_replay(inngest: Inngest, caplog: pytest.LogCaptureFixture) -> None:
    @inngest.create_function(fn_id="logs", trigger=TriggerEvent(event="t/logs"))
    def fn(ctx: Context) -> None:
        ctx.logger.info("before")
        ctx.step.run("a", lambda: 1)
        ctx.logger.info("between")
        ctx.step.sleep("nap", timedelta(seconds=5))
        ctx.logger.info("after")

    with caplog.at_level(logging.INFO, logger="django_inngest.functions"):
        inngest.send_sync(Event(name="t/logs"))
        run = only_run("test-app-logs")
        make_due(run)
        drain()
    records = [r for r in caplog.records if r.name.startswith("django_inngest.functions")]
    assert [r.getMessage() for r in records] == ["before", "between", "after"]
    for record in records:  # each line says which run and function wrote it
        assert getattr(record, "run_id", None) == run.run_id
        assert getattr(record, "function_id", None) == "test-app-logs"


def test_failure_emits_function_failed_and_runs_on_failure(inngest: Inngest) -> None:
    seen: list[dict[str, Any]] = []

    def on_failure(ctx: Context) -> None:
        seen.append(dict(ctx.event.data))

    @inngest.create_function(
        fn_id="doomed", trigger=TriggerEvent(event="t/doomed"), retries=0, on_failure=on_failure
    )
    def fn(ctx: Context) -> None:
        raise NonRetriableError("it broke")

    inngest.send_sync(Event(name="t/doomed", data={"k": "v"}))
    run = only_run("test-app-doomed")
    assert run.status == RunStatus.FAILED
    failed = StoredEvent.objects.get(name="inngest/function.failed")
    assert failed.external_id == run.run_id  # the run ID is the event ID
    assert failed.data["function_id"] == "test-app-doomed"
    assert failed.data["run_id"] == run.run_id
    assert failed.data["event"]["data"] == {"k": "v"}
    assert failed.data["error"]["message"] == "it broke"
    failure_run = only_run("test-app-doomed-failure")
    assert failure_run.status == RunStatus.COMPLETED
    assert seen and seen[0]["run_id"] == run.run_id
    # Runs triggered by function.failed emit no further failed/finished events.
    finished = StoredEvent.objects.filter(name="inngest/function.finished")
    assert {e.data["function_id"] for e in finished} == {"test-app-doomed"}
    assert finished.get().data["_inngest"] == {"status": "Failed"}


def test_finished_event_for_completed_run(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="ok", trigger=TriggerEvent(event="t/ok"))
    def fn(ctx: Context) -> str:
        return "done"

    inngest.send_sync(Event(name="t/ok"))
    run = only_run("test-app-ok")
    finished = StoredEvent.objects.get(name="inngest/function.finished")
    assert finished.data["result"] == "done"
    assert finished.data["run_id"] == run.run_id
    assert finished.external_id != run.run_id  # finished gets a fresh ULID
    assert not StoredEvent.objects.filter(name="inngest/function.failed").exists()


def test_claim_is_exclusive_and_duplicates_are_noops(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="once", trigger=TriggerEvent(event="t/once"))
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(seconds=5))

    inngest.send_sync(Event(name="t/once"))
    run = only_run("test-app-once")
    make_due(run)
    first = claim_again(run.run_id, "owner-a")
    assert first is not None and not first.recovered
    assert claim_again(run.run_id, "owner-b") is None  # lease held
    assert engine.advance(run.run_id) == "skipped"  # a duplicate task does nothing


def test_crash_mid_step_counts_an_attempt_and_resumes(inngest: Inngest) -> None:
    calls: list[str] = []

    @inngest.create_function(fn_id="crash", trigger=TriggerEvent(event="t/crash"), retries=2)
    def fn(ctx: Context) -> str:
        ctx.step.run("first", lambda: calls.append("first") or 1)
        ctx.step.run("second", lambda: calls.append("second") or 2)
        return "done"

    inngest.send_sync(Event(name="t/crash"))
    run = only_run("test-app-crash")
    # Rewind to "a worker died inside `second`": its row says Running, the lease is stale.
    StepRun.objects.filter(run=run, step_id="second").update(
        status=StepStatus.RUNNING,
        output=None,
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
    calls.clear()
    engine.advance(run.run_id)  # the crashed attempt counts; a retry is scheduled
    step = run.steps.get(step_id="second")
    assert step.status == StepStatus.RETRYING and step.attempts == 1
    assert step.attempt_log[0]["error"]["name"] == "WorkerLostError"
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert calls == ["second"]  # `first` was committed and never ran again


def test_a_step_that_always_kills_its_worker_ends_failed(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="killer", trigger=TriggerEvent(event="t/killer"), retries=1)
    def fn(ctx: Context) -> None:
        ctx.step.run("dies", lambda: None)

    inngest.send_sync(Event(name="t/killer"))
    run = only_run("test-app-killer")
    for attempt in (1, 2):
        StepRun.objects.filter(run=run).update(
            status=StepStatus.RUNNING,
            attempts=attempt,
            attempt_log=[{"attempt": attempt, "started_at": timezone.now().isoformat()}],
        )
        FunctionRun.objects.filter(pk=run.pk).update(
            status=RunStatus.RUNNING,
            ended_at=None,
            lease_owner="dead",
            lease_expires_at=timezone.now() - timedelta(seconds=1),
            ready_at=timezone.now(),
        )
        engine.advance(run.run_id)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error["name"] == "WorkerLostError"


def due_runs() -> list[str]:
    """What one poll would dispatch (``poller.tick`` without the dispatch)."""
    return FunctionRun.objects.take_due(timezone.now(), timedelta(seconds=30), poller.POLL_LIMIT)


def test_poller_redispatches_lost_and_due_runs(inngest: Inngest, settings: Any) -> None:
    settings.DJANGO_INNGEST_REDISPATCH_AFTER_SECONDS = 30

    @inngest.create_function(fn_id="lost", trigger=TriggerEvent(event="t/lost"))
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(seconds=5))

    inngest.send_sync(Event(name="t/lost"))
    run = only_run("test-app-lost")
    assert due_runs() == []  # sleeping: not due
    make_due(run)
    assert due_runs() == [run.run_id]  # due since its last dispatch
    assert due_runs() == []  # just dispatched: not again at once
    # The wake-up task was lost: after REDISPATCH_AFTER_SECONDS it is dispatched again.
    FunctionRun.objects.filter(pk=run.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=31)
    )
    assert due_runs() == [run.run_id]


def test_invocation_budget_yields_and_continues(inngest: Inngest, settings: Any) -> None:
    settings.DJANGO_INNGEST_INVOCATION_BUDGET_SECONDS = 0

    @inngest.create_function(fn_id="long", trigger=TriggerEvent(event="t/long"))
    def fn(ctx: Context) -> int:
        return sum(ctx.step.run(f"s{i}", lambda i=i: i) for i in range(4))

    inngest.send_sync(Event(name="t/long"))
    drain()
    run = only_run("test-app-long")
    assert run.status == RunStatus.COMPLETED and run.output == 6


def test_a_budget_yield_before_parallel_branches_charges_them_nothing(
    inngest: Inngest, settings: Any
) -> None:
    """Yielding the worker at group.parallel must not leave the branches recorded as started:
    on resume they would look like branches a dead worker was running, and pay a retry."""
    settings.DJANGO_INNGEST_INVOCATION_BUDGET_SECONDS = 0

    @inngest.create_function(fn_id="par", trigger=TriggerEvent(event="t/par"))
    def fn(ctx: Context) -> list[Any]:
        ctx.step.run("first", lambda: 1)  # progress, so the budget check may yield
        return list(
            ctx.group.parallel(
                tuple((lambda n=n: ctx.step.run(f"branch-{n}", lambda: n)) for n in "ab")
            )
        )

    inngest.send_sync(Event(name="t/par"))
    drain()
    run = only_run("test-app-par")
    assert (run.status, run.output) == (RunStatus.COMPLETED, ["a", "b"])
    for step in run.steps.filter(step_id__startswith="branch-"):
        assert step.attempts == 1, step.attempt_log
        assert all("error" not in attempt for attempt in step.attempt_log)


def test_parallel_branches_run_concurrently_and_memoize(inngest: Inngest) -> None:
    import threading

    barrier = threading.Barrier(3, timeout=5)
    calls: list[str] = []

    def branch(name: str) -> str:
        barrier.wait()  # only passes if all three run at the same time
        calls.append(name)
        return name.upper()

    @inngest.create_function(fn_id="conc", trigger=TriggerEvent(event="t/conc"))
    def fn(ctx: Context) -> list[Any]:
        results = ctx.group.parallel(
            tuple((lambda n=n: ctx.step.run(f"branch-{n}", branch, n)) for n in "abc")
        )
        after = ctx.step.run("after", lambda: "done")
        ctx.step.sleep("nap", timedelta(seconds=5))
        return [*results, after]

    inngest.send_sync(Event(name="t/conc"))
    run = only_run("test-app-conc")
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.output == ["A", "B", "C", "done"]
    assert sorted(calls) == ["a", "b", "c"]  # replay after the sleep did not run them again
    ids = list(run.steps.order_by("position").values_list("step_id", flat=True))
    assert sorted(ids[:3]) == ["branch-a", "branch-b", "branch-c"] and ids[3:] == ["after", "nap"]


def test_parallel_branch_failure_retries_only_that_branch(inngest: Inngest) -> None:
    attempts: dict[str, int] = {"ok": 0, "flaky": 0}

    def ok() -> str:
        attempts["ok"] += 1
        return "ok"

    def flaky() -> str:
        attempts["flaky"] += 1
        if attempts["flaky"] < 2:
            raise ValueError("first try fails")
        return "flaky"

    @inngest.create_function(fn_id="pfail", trigger=TriggerEvent(event="t/pfail"), retries=2)
    def fn(ctx: Context) -> list[str]:
        return list(
            ctx.group.parallel(
                (lambda: ctx.step.run("ok", ok), lambda: ctx.step.run("flaky", flaky))
            )
        )

    inngest.send_sync(Event(name="t/pfail"))
    run = only_run("test-app-pfail")
    assert run.wait_kind == WaitKind.RETRY
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.output == ["ok", "flaky"]
    assert attempts == {"ok": 1, "flaky": 2}


def test_parallel_branches_with_several_steps_and_a_final_failure(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="lanes", trigger=TriggerEvent(event="t/lanes"), retries=0)
    def fn(ctx: Context) -> Any:
        def lane(n: int) -> int:
            first = ctx.step.run(f"l{n}-1", lambda: n)
            return int(ctx.step.run(f"l{n}-2", lambda: first * 10))

        def broken() -> None:
            ctx.step.run("broken", lambda: 1 / 0)

        try:
            ctx.group.parallel((lambda: lane(1), lambda: lane(2), broken))
        except StepError as err:
            return {"error": err.name}
        return None

    inngest.send_sync(Event(name="t/lanes"))
    run = only_run("test-app-lanes")
    assert run.status == RunStatus.COMPLETED
    steps = dict(run.steps.values_list("step_id", "status"))
    assert steps["l1-2"] == steps["l2-2"] == "Completed" and steps["broken"] == "Failed"
    assert run.output["error"] == "ZeroDivisionError"


def test_a_long_step_is_recorded_as_running_and_keeps_its_lease(
    inngest: Inngest, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    settings.DJANGO_INNGEST_LEASE_SECONDS = 0.6  # the keeper acts after 0.2 s, every 0.1 s
    release = threading.Event()

    @inngest.create_function(fn_id="slow", trigger=TriggerEvent(event="t/slow"))
    def fn(ctx: Context) -> str:
        return ctx.step.run("slow", lambda: release.wait(10) and "done")  # type: ignore[no-any-return]

    run, worker = start_in_a_worker_thread(inngest, "t/slow", monkeypatch)
    try:
        marker = wait_until(
            lambda: run.steps.filter(step_id="slow", status="Running").first(), 5, "the marker"
        )
        assert marker.attempts == 1
        first_expiry = FunctionRun.objects.get(pk=run.pk).lease_expires_at
        wait_until(
            lambda: FunctionRun.objects.get(pk=run.pk).lease_expires_at != first_expiry,
            5,
            "a heartbeat",
        )
        assert FunctionRun.objects.get(pk=run.pk).lease_expires_at > timezone.now()
    finally:
        release.set()
        worker.join(10)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.output == "done"
    assert run.steps.get().status == StepStatus.COMPLETED  # the marker row became the result


def test_crashes_outside_a_recorded_step_are_charged_to_the_run(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="shortcrash", trigger=TriggerEvent(event="t/sc"), retries=2)
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(seconds=5))

    inngest.send_sync(Event(name="t/sc"))
    run = only_run("test-app-shortcrash")
    outcomes = []
    for _ in range(3):
        # A worker died holding the lease, before any step row said Running.
        FunctionRun.objects.filter(pk=run.pk).update(
            lease_owner="dead",
            lease_expires_at=timezone.now() - timedelta(seconds=1),
            ready_at=timezone.now(),
        )
        outcomes.append(engine.advance(run.run_id))
    run.refresh_from_db()
    assert outcomes == ["paused", "paused", "failed"]
    assert run.attempt == 3 and run.status == RunStatus.FAILED
    assert run.error["name"] == "WorkerLostError"


def test_a_step_is_written_only_while_its_run_is_ours(inngest: Inngest) -> None:
    save_step_if_owner = StepRun.objects.save_if_owned

    @inngest.create_function(fn_id="own", trigger=TriggerEvent(event="t/own"))
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(seconds=5))

    inngest.send_sync(Event(name="t/own"))
    run = only_run("test-app-own")
    FunctionRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="me")

    def step(step_id: str) -> StepRun:
        return StepRun(
            run_id=run.run_id,
            step_id=step_id,
            position=9,
            kind="run",
            status="Completed",
            attempts=1,
            output={"x": [1, "two"]},
            started_at=timezone.now(),
        )

    mine = step("mine")
    assert save_step_if_owner(mine, "me") is True
    assert mine.pk is not None
    assert StepRun.objects.get(pk=mine.pk).output == {"x": [1, "two"]}
    assert save_step_if_owner(step("theirs"), "someone-else") is False  # lease taken over
    assert save_step_if_owner(step("mine"), "me") is False  # the step exists already
    FunctionRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
    assert save_step_if_owner(step("late"), "me") is False  # cancelled: the result is dropped
    mine.output = "changed"
    assert save_step_if_owner(mine, "me") is False  # updates obey the same rule
    assert not StepRun.objects.filter(step_id__in=["theirs", "late"]).exists()
    assert StepRun.objects.get(pk=mine.pk).output == {"x": [1, "two"]}
