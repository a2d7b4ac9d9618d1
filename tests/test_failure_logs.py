"""A run that fails for good logs exactly one ERROR line naming the run, the function and the
error, and no traceback anywhere (retries log a WARNING each; the stack is stored with the run,
not printed). Checked for each way a run can fail."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_inngest import Context, Event, Inngest, NonRetriableError, TriggerEvent
from django_inngest.engine import worker
from django_inngest.models import FunctionRun, RunStatus, StepRun, StepStatus
from django_inngest.registry import registry
from django_inngest.testing import drain
from tests.helpers import make_due, only_run

pytestmark = pytest.mark.django_db(transaction=True)


def failing_step(inngest: Inngest) -> Callable[[], None]:
    @inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/f"), retries=2)
    def fn(ctx: Context) -> None:
        ctx.step.run("charge", lambda: 1 / 0)

    def drive() -> None:
        inngest.send_sync(Event(name="t/f"))
        for _ in range(2):  # the two retries
            make_due(only_run("test-app-f"))
            drain()

    return drive


def non_retriable(inngest: Inngest) -> Callable[[], None]:
    @inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/f"))
    def fn(ctx: Context) -> None:
        def refuse() -> None:
            raise NonRetriableError("card declined")

        ctx.step.run("charge", refuse)

    return lambda: inngest.send_sync(Event(name="t/f")) and None


def handler_error(inngest: Inngest) -> Callable[[], None]:
    @inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/f"), retries=1)
    def fn(ctx: Context) -> None:
        ctx.step.run("fine", lambda: 1)
        raise KeyError("customer")

    def drive() -> None:
        inngest.send_sync(Event(name="t/f"))
        make_due(only_run("test-app-f"))
        drain()

    return drive


def bad_expression(inngest: Inngest) -> Callable[[], None]:
    @inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/f"))
    def fn(ctx: Context) -> None:
        ctx.step.wait_for_event("w", event="t/x", if_exp="async.data.id ==", timeout=60_000)

    return lambda: inngest.send_sync(Event(name="t/f")) and None


def crash_loop(inngest: Inngest) -> Callable[[], None]:
    @inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/f"), retries=0)
    def fn(ctx: Context) -> None:
        ctx.step.run("dies", lambda: None)

    def drive() -> None:
        inngest.send_sync(Event(name="t/f"))
        run = only_run("test-app-f")
        # Its worker died inside the step (recorded as Running), and it has no retry left.
        StepRun.objects.filter(run=run).update(
            status=StepStatus.RUNNING,
            attempt_log=[{"attempt": 1, "started_at": timezone.now().isoformat()}],
        )
        FunctionRun.objects.filter(pk=run.pk).update(
            status=RunStatus.RUNNING,
            ended_at=None,
            output=None,
            lease_owner="dead",
            lease_expires_at=timezone.now() - timedelta(seconds=1),
            ready_at=timezone.now(),
        )
        worker.advance(run.run_id)

    return drive


def unknown_function(inngest: Inngest) -> Callable[[], None]:
    @inngest.create_function(fn_id="f", trigger=TriggerEvent(event="t/f"))
    def fn(ctx: Context) -> None:
        pass

    def drive() -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("django_inngest.executor.dispatch", lambda ids: None)
            inngest.send_sync(Event(name="t/f"))
            patch.setattr(registry, "get", lambda function_id: None)
            worker.advance(only_run("test-app-f").run_id)

    return drive


SCENARIOS: dict[str, tuple[Callable[[Inngest], Callable[[], None]], str, str]] = {
    "a step out of retries": (failing_step, "ZeroDivisionError", "division by zero"),
    "a non-retriable step error": (non_retriable, "NonRetriableError", "card declined"),
    "an error outside steps": (handler_error, "KeyError", "customer"),
    "an invalid wait expression": (bad_expression, "ExpressionError", "step 'w'"),
    "a worker that keeps dying": (crash_loop, "WorkerLostError", "stopped"),
    "a function no worker knows": (unknown_function, "FunctionNotFoundError", "test-app-f"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_one_error_line_per_failed_run_and_no_traceback(
    scenario: str, inngest: Inngest, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.DJANGO_INNGEST_FUNCTION_NOT_FOUND_GRACE_SECONDS = 0
    build, error_name, message_part = SCENARIOS[scenario]
    drive = build(inngest)
    with caplog.at_level(logging.DEBUG):
        drive()
    run = only_run("test-app-f")
    assert run.status == RunStatus.FAILED
    assert run.error["name"] == error_name
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert f"run_id={run.run_id}" in line and "function=test-app-f" in line
    assert error_name in line and message_part in line
    assert "\n" not in line  # one line
    for record in caplog.records:
        assert not record.exc_info and not record.stack_info, record.getMessage()
        assert "Traceback" not in record.getMessage()
