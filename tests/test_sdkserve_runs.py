"""Functions written with inngest-py 0.5.19, run by our engine over real HTTP: every step
kind, memo encoding, attempts, retries and both error headers."""

from __future__ import annotations

import hashlib

import pytest
from django.utils import timezone

from django_inngest.engine import worker
from django_inngest.models import FunctionRun, Listener, RunStatus, StepRun, StepStatus, WaitKind
from tests.helpers import make_due
from tests.sdkserve.app import probe
from tests.sdkserve.fixtures import Call, SdkServer

pytestmark = pytest.mark.django_db(transaction=True)


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def test_steps_run_once_each_and_are_memoized_by_hashed_id(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/steps")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == [1, 2, 3, 10]  # the repeated "s1" is its own step, hashed "s1:1"
    assert probe.executions[run.run_id] == ["s1", "s2", "s3", "s10"]
    steps = list(StepRun.objects.filter(run=run).order_by("position"))
    assert [s.step_id for s in steps] == [sha1("s1"), sha1("s2"), sha1("s3"), sha1("s1:1")]
    assert [s.display_name for s in steps] == ["s1", "s2", "s3", "s1"]
    assert [s.output for s in steps] == [1, 2, 3, 10]
    assert all(s.status == StepStatus.COMPLETED and s.attempts == 1 for s in steps)


def test_each_call_is_untargeted_with_attempt_zero_until_the_end(
    sdk_server: SdkServer, calls: list[Call]
) -> None:
    run = sdk_server.run("sdks/steps")
    assert [(c.target, c.attempt) for c in calls] == [(None, 0)] * 5
    assert [c.outcome for c in calls] == ["StepsReported['StepRun']"] * 4 + ["Completed"]
    assert {c.run_id for c in calls} == {run.run_id}


def test_sleep_pauses_the_run_and_the_wake_memoizes_null(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/sleep", seconds=120)
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.SLEEP)
    assert run.lease_owner == ""  # the worker is free
    nap = StepRun.objects.get(run=run, display_name="nap")
    assert nap.status == StepStatus.SLEEPING and nap.wake_at is not None
    assert 110 < (nap.wake_at - nap.started_at).total_seconds() < 130
    assert abs((run.ready_at - nap.wake_at).total_seconds()) < 0.01
    assert worker.advance(run.run_id) == "skipped"  # not due: nothing happens
    make_due(run)
    assert worker.advance(run.run_id) == "completed"
    run.refresh_from_db()
    assert (run.status, run.output) == (RunStatus.COMPLETED, "awake")
    assert probe.executions[run.run_id] == ["before", "after"]  # "before" never ran again
    nap.refresh_from_db()
    assert (nap.status, nap.output) == (StepStatus.COMPLETED, None)


def test_wait_for_event_resumes_with_the_matching_event(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/wait", id="order-7")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.EVENT)
    listener = Listener.objects.get(run=run)
    assert listener.event_name == "sdks/approved"
    assert listener.expression == 'async.data.id == "order-7"'  # `event` substituted now
    sdk_server.emit("sdks/approved", id="order-8", by="mallory")
    assert sdk_server.drain() == {}  # no wake: another order's approval
    sdk_server.emit("sdks/approved", id="order-7", by="ada")
    assert sdk_server.drain() == {run.run_id: "completed"}
    run.refresh_from_db()
    assert run.output == {"by": "ada", "name": "sdks/approved"}
    assert not Listener.objects.filter(run=run).exists()


def test_wait_for_event_times_out_to_none(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/wait", id="x", timeout=60)
    make_due(run)
    assert worker.advance(run.run_id) == "completed"
    run.refresh_from_db()
    assert (run.status, run.output) == (RunStatus.COMPLETED, None)
    wait = StepRun.objects.get(run=run)
    assert (wait.status, wait.output, wait.display_name) == (StepStatus.COMPLETED, None, "approval")


def test_a_failing_step_is_retried_with_backoff_and_its_own_attempt_count(
    sdk_server: SdkServer, calls: list[Call]
) -> None:
    run = sdk_server.run("sdks/flaky", failures=2)
    step = StepRun.objects.get(run=run)
    assert (step.status, step.attempts, step.display_name) == (StepStatus.RETRYING, 1, "attempt")
    run.refresh_from_db()
    assert (run.status, run.wait_kind, run.ready_at) == (RunStatus.RUNNING, "retry", step.wake_at)
    for _ in range(2):
        make_due(run)
        worker.advance(run.run_id)
    run.refresh_from_db()
    assert (run.status, run.output) == (RunStatus.COMPLETED, "ok")
    # ctx.attempt is per request: the step's own retries, then 0 again for the next call.
    assert probe.attempts[run.run_id] == [0, 1, 2]
    assert [(c.target, c.attempt) for c in calls] == [
        (None, 0),
        (sha1("attempt"), 1),
        (sha1("attempt"), 2),
        (None, 0),
    ]
    step.refresh_from_db()
    assert (step.status, step.attempts, step.output) == (StepStatus.COMPLETED, 3, "ok")
    assert [bool(entry.get("error")) for entry in step.attempt_log] == [True, True, False]
    assert step.attempt_log[0]["error"]["message"] == "failure 1"


def retry_until_settled(run: FunctionRun, turns: int = 10) -> FunctionRun:
    for _ in range(turns):
        run.refresh_from_db()
        if run.is_ended:
            return run
        make_due(run)
        worker.advance(run.run_id)
    raise AssertionError(f"run {run.run_id} still {run.status}")


def test_the_last_attempt_is_reported_as_step_failed_and_can_be_caught(
    sdk_server: SdkServer, calls: list[Call]
) -> None:
    run = retry_until_settled(sdk_server.run("sdks/doomed", catch=True))
    assert run.status == RunStatus.COMPLETED
    assert run.output == {"caught": "ValueError", "message": "kaput"}
    assert probe.count(run.run_id, "boom") == 2  # retries=1: two attempts
    assert [c.outcome for c in calls] == [
        "StepsReported['StepError']",
        "StepsReported['StepFailed']",  # the SDK knew it was the last: ctx.max_attempts
        "Completed",
    ]
    step = StepRun.objects.get(run=run)
    assert (step.status, step.error["name"], step.error["message"]) == (
        StepStatus.FAILED,
        "ValueError",
        "kaput",
    )


def test_an_uncaught_step_failure_fails_the_run_and_starts_on_failure(
    sdk_server: SdkServer,
) -> None:
    run = retry_until_settled(sdk_server.run("sdks/doomed"))
    assert run.status == RunStatus.FAILED
    assert run.error["name"] == "ValueError"
    sdk_server.drain()  # inngest/function.failed started the SDK's on_failure function
    failure = FunctionRun.objects.get(function_id="sdks-doomed-failure")
    assert failure.status == RunStatus.COMPLETED
    assert failure.output["failed"] == "sdks-doomed"
    assert failure.output["error"]["message"] == "kaput"


def test_non_retriable_error_fails_at_once(sdk_server: SdkServer, calls: list[Call]) -> None:
    run = sdk_server.run("sdks/refuse")
    assert run.status == RunStatus.FAILED
    assert (run.error["name"], run.error["message"]) == ("NonRetriableError", "not today")
    assert len(calls) == 1  # X-Inngest-No-Retry: true
    assert probe.count(run.run_id, "refuser") == 1


def test_retry_after_sets_the_next_attempt_time(sdk_server: SdkServer, calls: list[Call]) -> None:
    before = timezone.now()
    run = sdk_server.run("sdks/later")
    assert (run.status, run.wait_kind, run.attempt) == (RunStatus.RUNNING, "retry", 1)
    assert run.ready_at is not None
    assert 25 < (run.ready_at - before).total_seconds() < 35  # the app's Retry-After: 30 s
    make_due(run)
    assert worker.advance(run.run_id) == "completed"
    assert [(c.attempt, c.outcome) for c in calls] == [(0, "FunctionError"), (1, "Completed")]
