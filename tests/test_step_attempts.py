"""``ctx.attempt`` with Inngest's meaning: "incremented every time the function throws an error
and is retried, and reset when steps complete". Inside a step body it is that step's retry
count; outside, the failures since the run last made progress. On the code this branch started
from it stayed 0 through a step's retries, so ``if ctx.attempt >= 2: fallback()`` never ran."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_inngest import Context, ContextSync, Event, Inngest, TriggerEvent
from django_inngest.console.timeline import build_timeline
from django_inngest.models import RunStatus
from django_inngest.testing import drain
from tests.api_fixtures import bearer_client
from tests.helpers import make_due, only_run

pytestmark = pytest.mark.django_db(transaction=True)


def advance_until_done(function_id: str, rounds: int = 8) -> Any:
    run = only_run(function_id)
    for _ in range(rounds):
        run.refresh_from_db()
        if run.status != RunStatus.RUNNING:
            break
        make_due(run)
        drain()
    run.refresh_from_db()
    return run


def test_inside_a_step_attempt_is_that_steps_retry_count_and_the_fallback_runs(
    inngest: Inngest,
) -> None:
    inside: list[int] = []
    outside: list[tuple[str, int]] = []

    def charge(ctx: ContextSync) -> str:
        inside.append(ctx.attempt)
        if ctx.attempt >= 2:
            return "fallback provider"  # the documented pattern: change course on retries
        raise ConnectionError("primary provider down")

    @inngest.create_function(fn_id="pay", trigger=TriggerEvent(event="t/pay"), retries=4)
    def fn(ctx: ContextSync) -> str:
        outside.append(("before", ctx.attempt))
        ctx.step.run("prepare", lambda: "ready")
        outside.append(("after prepare", ctx.attempt))
        used = ctx.step.run("charge", charge, ctx)
        outside.append(("after charge", ctx.attempt))
        return used

    inngest.send_sync(Event(name="t/pay"))
    run = advance_until_done("test-app-pay")
    assert (run.status, run.output) == (RunStatus.COMPLETED, "fallback provider")
    assert inside == [0, 1, 2]
    # The turn that retries "charge" replays with that step's count; progress resets it.
    assert outside == [
        ("before", 0),
        ("after prepare", 0),
        ("before", 1),
        ("after prepare", 1),
        ("before", 2),
        ("after prepare", 2),
        ("after charge", 0),
    ]


def test_async_steps_see_their_own_attempt(inngest: Inngest) -> None:
    inside: list[tuple[str, int]] = []

    async def flaky(ctx: Context, name: str, failures: int) -> str:
        inside.append((name, ctx.attempt))
        if ctx.attempt < failures:
            raise RuntimeError(f"{name} failed")
        return name

    @inngest.create_function(fn_id="two", trigger=TriggerEvent(event="t/two"), retries=3)
    async def fn(ctx: Context) -> list[str]:
        first = await ctx.step.run("first", flaky, ctx, "first", 1)
        second = await ctx.step.run("second", flaky, ctx, "second", 2)
        return [first, second]

    inngest.send_sync(Event(name="t/two"))
    run = advance_until_done("test-app-two")
    assert (run.status, run.output) == (RunStatus.COMPLETED, ["first", "second"])
    # "second" starts again from 0: "first" completing reset the count.
    assert inside == [("first", 0), ("first", 1), ("second", 0), ("second", 1), ("second", 2)]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_parallel_branches_each_see_their_own_attempt(inngest: Inngest, kind: str) -> None:
    seen: dict[str, list[int]] = {"steady": [], "shaky": []}
    lock = threading.Lock()

    def body(ctx: Any, name: str) -> str:
        with lock:
            seen[name].append(ctx.attempt)
        if name == "shaky" and ctx.attempt < 2:
            raise RuntimeError("shaky")
        return name

    if kind == "sync":

        @inngest.create_function(fn_id="par", trigger=TriggerEvent(event="t/par"), retries=3)
        def fn(ctx: ContextSync) -> Any:
            return list(
                ctx.group.parallel(
                    tuple((lambda n=n: ctx.step.run(n, body, ctx, n)) for n in ("steady", "shaky"))
                )
            )

    else:

        @inngest.create_function(fn_id="par", trigger=TriggerEvent(event="t/par"), retries=3)
        async def afn(ctx: Context) -> Any:
            return list(
                await ctx.group.parallel(
                    tuple((lambda n=n: ctx.step.run(n, body, ctx, n)) for n in ("steady", "shaky"))
                )
            )

    inngest.send_sync(Event(name="t/par"))
    run = advance_until_done("test-app-par")
    assert (run.status, run.output) == (RunStatus.COMPLETED, ["steady", "shaky"])
    assert seen == {"steady": [0], "shaky": [0, 1, 2]}


def test_handler_failures_count_since_the_last_progress(inngest: Inngest) -> None:
    """retries=1: the handler may fail once per unit of work. Failing once before and once after
    a new step completes is fine in Inngest (the count was reset); the old run-wide count made
    the second failure the last."""
    seen: list[int] = []
    failed_at: set[str] = set()

    def fail_once(where: str) -> None:
        if where not in failed_at:
            failed_at.add(where)
            raise RuntimeError(f"hiccup {where}")

    @inngest.create_function(fn_id="hic", trigger=TriggerEvent(event="t/hic"), retries=1)
    def fn(ctx: ContextSync) -> str:
        seen.append(ctx.attempt)
        ctx.step.run("a", lambda: "a")
        fail_once("after a")
        ctx.step.run("b", lambda: "b")
        fail_once("after b")
        return "done"

    inngest.send_sync(Event(name="t/hic"))
    run = advance_until_done("test-app-hic")
    assert (run.status, run.output) == (RunStatus.COMPLETED, "done")
    assert seen == [0, 1, 1]
    assert run.attempt == 1  # the run's own count: failures since it last progressed


def test_handler_failures_without_progress_use_up_the_retries(inngest: Inngest) -> None:
    seen: list[int] = []

    @inngest.create_function(fn_id="stuck", trigger=TriggerEvent(event="t/stuck"), retries=2)
    def fn(ctx: ContextSync) -> None:
        ctx.step.run("a", lambda: "a")
        seen.append(ctx.attempt)
        raise RuntimeError("always")

    inngest.send_sync(Event(name="t/stuck"))
    run = advance_until_done("test-app-stuck")
    assert run.status == RunStatus.FAILED
    assert seen == [0, 1, 2]


def test_timeline_and_rest_api_keep_showing_per_step_attempts(inngest: Inngest) -> None:
    def flaky(ctx: ContextSync) -> str:
        if ctx.attempt < 2:
            raise RuntimeError(f"attempt {ctx.attempt}")
        return "ok"

    @inngest.create_function(fn_id="shown", trigger=TriggerEvent(event="t/shown"), retries=3)
    def fn(ctx: ContextSync) -> str:
        ctx.step.run("first", lambda: 1)
        return ctx.step.run("flaky", flaky, ctx)

    inngest.send_sync(Event(name="t/shown"))
    run = advance_until_done("test-app-shown")
    steps = list(run.steps.order_by("position"))
    rows = {row.name: row for row in build_timeline(run, steps, timezone.now()).rows}
    assert (rows["first"].attempts, rows["flaky"].attempts) == (1, 3)
    assert [s.kind for s in rows["flaky"].segments].count("attempt") == 3
    data = bearer_client().get(f"/v1/runs/{run.run_id}/steps").json()["data"]
    assert [(s["step_id"], s["attempts"]) for s in data] == [("first", 1), ("flaky", 3)]
    assert [e["error"]["message"] for e in data[1]["attempt_log"][:2]] == [
        "attempt 0",
        "attempt 1",
    ]


def test_a_middleware_may_set_ctx_attempt(inngest: Inngest) -> None:
    """``attempt`` stays a plain, assignable dataclass field (inngest-py's ``Context``)."""
    from django_inngest import MiddlewareSync, StepMemos
    from django_inngest.engine.context import BaseContext
    from django_inngest.function import Function

    class Pin(MiddlewareSync):
        def transform_input(self, ctx: BaseContext, function: Function, steps: StepMemos) -> None:
            ctx.attempt = 7

    seen: list[int] = []

    @inngest.create_function(fn_id="pin", trigger=TriggerEvent(event="t/pin"), middleware=[Pin])
    def fn(ctx: ContextSync) -> None:
        seen.append(ctx.attempt)
        ctx.step.sleep("nap", timedelta(milliseconds=1))

    inngest.send_sync(Event(name="t/pin"))
    drain()
    assert seen == [7]
