"""An invalid ``wait_for_event`` expression fails its run at once, naming the step, instead of
being retried as if it could heal; each distinct expression is checked once per process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_inngest import Context, Event, Inngest, TriggerEvent
from django_inngest.engine import retries, wait_expressions
from django_inngest.exceptions import ExpressionError
from django_inngest.models import RunStatus, StepRun
from tests.helpers import only_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    wait_expressions._problem.cache_clear()
    yield
    wait_expressions._problem.cache_clear()


def waiter(inngest: Inngest, fn_id: str, if_exp: str, calls: list[int]) -> None:
    @inngest.create_function(fn_id=fn_id, trigger=TriggerEvent(event=f"t/{fn_id}"), retries=4)
    def fn(ctx: Context) -> Any:
        calls.append(1)
        ctx.step.run("before", lambda: "ok")
        return ctx.step.wait_for_event(
            "approval", event="t/approved", if_exp=if_exp, timeout=timedelta(hours=1)
        )


@pytest.mark.parametrize(
    ("if_exp", "problem"),
    [
        ("event.data.id == async.data.id &&", "syntax error"),
        ("event.data.id == async.data.id)", "syntax error"),
        ("order.id == async.data.id", "unknown variable 'order'"),
        ("event.data.id == async.data.id && nosuch(async.data.x)", "unknown function 'nosuch'"),
    ],
)
def test_an_invalid_expression_fails_the_run_at_once_naming_the_step(
    inngest: Inngest, if_exp: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    waiter(inngest, "bad", if_exp, calls)
    with caplog.at_level(logging.WARNING, logger="django_inngest"):
        inngest.send_sync(Event(name="t/bad", data={"id": 1}))
    run = only_run("test-app-bad")
    assert run.status == RunStatus.FAILED  # no retry scheduled: it fails in the first turn
    assert calls == [1] and run.attempt == 0
    assert run.error["name"] == "ExpressionError"
    assert run.error["message"].startswith("wait_for_event step 'approval': ")
    assert problem in run.error["message"]
    # Nothing was scheduled for the step; the step before it is kept.
    assert list(StepRun.objects.filter(run=run).values_list("step_id", flat=True)) == ["before"]
    assert not run.listeners.exists()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # no "will retry"


def test_each_expression_is_checked_once(inngest: Inngest, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    validate = wait_expressions.expressions.validate

    def counting(expression: str, **kwargs: Any) -> None:
        checked.append(expression)
        validate(expression, **kwargs)

    monkeypatch.setattr(wait_expressions.expressions, "validate", counting)
    good = "event.data.id == async.data.id"
    bad = "event.data.id =="
    waiter(inngest, "good", good, [])
    waiter(inngest, "worse", bad, [])
    for _ in range(3):
        inngest.send_sync(Event(name="t/good", data={"id": 1}))
        inngest.send_sync(Event(name="t/worse", data={"id": 1}))
    assert sorted(checked) == sorted([good, bad])  # failures are cached too


def test_a_valid_expression_still_waits(inngest: Inngest) -> None:
    waiter(inngest, "fine", "event.data.id == async.data.id", [])
    inngest.send_sync(Event(name="t/fine", data={"id": 1}))
    run = only_run("test-app-fine")
    assert run.status == RunStatus.RUNNING and run.listeners.count() == 1


def test_expression_errors_are_not_retriable() -> None:
    failure = retries.Failure.of(ExpressionError("x ==", "syntax error"), timezone.now())
    assert not failure.retriable
    assert retries.next_attempt_at(failure, 1, 4, timezone.now()) is None


def test_an_expression_error_outside_a_wait_is_not_retried_either(inngest: Inngest) -> None:
    from django_inngest import expressions

    @inngest.create_function(fn_id="evaluates", trigger=TriggerEvent(event="t/ev"), retries=4)
    def fn(ctx: Context) -> Any:
        expressions.validate("event.data.x ==")  # e.g. an expression built by the handler

    inngest.send_sync(Event(name="t/ev"))
    run = only_run("test-app-evaluates")
    assert (run.status, run.attempt, run.error["name"]) == (RunStatus.FAILED, 0, "ExpressionError")
