"""``async def`` handlers, as inngest-py has them: ``await ctx.step.*`` with the same durable
semantics as sync handlers (django-q2 in sync mode: sending an event runs its functions inline
up to the first pause; ``drain`` advances what is due after). On the code this branch started
from, every one of these runs failed with "step output is not JSON-serialisable: Object of type
coroutine"."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core import checks

from django_inngest import (
    Context,
    ContextSync,
    Event,
    Inngest,
    Middleware,
    MiddlewareSync,
    NonRetriableError,
    RetryAfterError,
    StepError,
    TriggerEvent,
    cancel_run,
)
from django_inngest.exceptions import ConfigurationError
from django_inngest.models import FunctionRun, RunStatus, StepRun, StepStatus, WaitKind
from django_inngest.testing import drain
from tests.helpers import make_due, only_run

pytestmark = pytest.mark.django_db(transaction=True)


def error_message(run: FunctionRun) -> str:
    assert isinstance(run.error, dict), run.error
    return str(run.error["message"])


def test_async_steps_commit_before_the_handler_continues(inngest: Inngest) -> None:
    loop_threads: set[int] = set()
    body_threads: set[int] = set()

    async def double(x: int) -> int:
        loop_threads.add(threading.get_ident())
        await asyncio.sleep(0)
        return x * 2

    def committed_steps() -> list[str]:
        # A sync body may use the ORM: it runs on the worker thread, outside the event loop.
        body_threads.add(threading.get_ident())
        return list(StepRun.objects.order_by("position").values_list("step_id", flat=True))

    @inngest.create_function(fn_id="steps", trigger=TriggerEvent(event="t/steps"))
    async def fn(ctx: Context) -> Any:
        a = await ctx.step.run("a", double, 21)
        seen = await ctx.step.run("seen", committed_steps)
        b = await ctx.step.run("b", lambda: double(a))  # a sync callable returning a coroutine
        runs = await ctx.step.run("count", lambda: FunctionRun.objects.count())
        return {"a": a, "seen": seen, "b": b, "runs": runs}

    inngest.send_sync(Event(name="t/steps"))
    run = only_run("test-app-steps")
    assert run.status == RunStatus.COMPLETED, run.error
    # "a" was committed before the next body ran; "seen" itself not yet.
    assert run.output == {"a": 42, "seen": ["a"], "b": 84, "runs": 1}
    steps = list(run.steps.values_list("step_id", "status", "attempts"))
    assert steps == [(s, "Completed", 1) for s in ("a", "seen", "b", "count")]
    # One worker thread: the event loop and the sync bodies share it (and its connection).
    assert loop_threads == body_threads and len(body_threads) == 1


def test_async_steps_are_memoized_across_a_sleep(inngest: Inngest) -> None:
    calls: list[str] = []

    async def work(name: str) -> str:
        calls.append(name)
        return name.upper()

    @inngest.create_function(fn_id="sleepy", trigger=TriggerEvent(event="t/sleepy"))
    async def fn(ctx: Context) -> list[str]:
        a = await ctx.step.run("a", work, "a")
        await ctx.step.sleep("nap", timedelta(seconds=30))
        b = await ctx.step.run("b", work, "b")
        return [a, b]

    inngest.send_sync(Event(name="t/sleepy"))
    run = only_run("test-app-sleepy")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.SLEEP)
    make_due(run)
    drain()
    run.refresh_from_db()
    assert (run.status, run.output) == (RunStatus.COMPLETED, ["A", "B"])
    assert calls == ["a", "b"]


def test_async_step_retries_then_succeeds_and_errors_follow_inngest_rules(
    inngest: Inngest,
) -> None:
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError(f"boom {len(attempts)}")
        return "ok"

    async def permanent() -> None:
        raise NonRetriableError("no point retrying")

    @inngest.create_function(fn_id="errs", trigger=TriggerEvent(event="t/errs"), retries=3)
    async def fn(ctx: Context) -> dict[str, Any]:
        result = await ctx.step.run("flaky", flaky)
        try:
            await ctx.step.run("permanent", permanent)
        except StepError as err:  # catchable, as in inngest-py
            return {"result": result, "caught": err.message}
        return {"result": result}

    inngest.send_sync(Event(name="t/errs"))
    run = only_run("test-app-errs")
    for _ in range(5):
        make_due(run)
        drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == {"result": "ok", "caught": "no point retrying"}
    flaky_step = run.steps.get(step_id="flaky")
    assert flaky_step.attempts == 3
    assert run.steps.get(step_id="permanent").attempts == 1


def test_async_retry_after_error_sets_the_next_attempt(inngest: Inngest) -> None:
    async def later() -> None:
        raise RetryAfterError("slow down", timedelta(minutes=10))

    @inngest.create_function(fn_id="later", trigger=TriggerEvent(event="t/later"))
    async def fn(ctx: Context) -> None:
        await ctx.step.run("later", later)

    inngest.send_sync(Event(name="t/later"))
    run = only_run("test-app-later")
    step = run.steps.get()
    assert (run.wait_kind, step.status) == (WaitKind.RETRY, StepStatus.RETRYING)
    assert step.wake_at is not None and run.ready_at == step.wake_at
    assert 590 < (step.wake_at - step.started_at).total_seconds() <= 601


def test_async_handler_error_outside_steps_is_retried_then_fails(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="body", trigger=TriggerEvent(event="t/body"), retries=1)
    async def fn(ctx: Context) -> None:
        raise RuntimeError(f"body error at attempt {ctx.attempt}")

    inngest.send_sync(Event(name="t/body"))
    run = only_run("test-app-body")
    assert run.wait_kind == WaitKind.RETRY
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert error_message(run) == "body error at attempt 1"


def test_async_wait_for_event_send_event_and_invoke(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="child", trigger=TriggerEvent(event="t/never"))
    def child(ctx: ContextSync) -> dict[str, Any]:  # a sync child of an async parent
        return {"n": ctx.event.data["n"] * 2, "v": ctx.event.v}

    @inngest.create_function(fn_id="parent", trigger=TriggerEvent(event="t/order"))
    async def parent(ctx: Context) -> dict[str, Any]:
        ids = await ctx.step.send_event("notify", Event(name="t/notified", data={"o": 1}))
        paid = await ctx.step.wait_for_event(
            "paid", event="t/paid", if_exp="event.data.o == async.data.o", timeout=60_000
        )
        doubled = await ctx.step.invoke("double", function=child, data={"n": 21}, v="2024-1")
        return {"sent": len(ids), "paid": paid.data if paid else None, "child": doubled}

    inngest.send_sync(Event(name="t/order", data={"o": 1}))
    run = only_run("test-app-parent")
    assert run.wait_kind == WaitKind.EVENT
    inngest.send_sync(Event(name="t/paid", data={"o": 1, "amount": 5}))
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == {
        "sent": 1,
        "paid": {"o": 1, "amount": 5},
        "child": {"n": 42, "v": "2024-1"},
    }


def test_async_on_failure_runs_async(inngest: Inngest) -> None:
    seen: list[str] = []

    async def on_failure(ctx: Context) -> None:
        seen.append(await ctx.step.run("note", lambda: ctx.event.data["error"]["message"]))

    @inngest.create_function(
        fn_id="doomed", trigger=TriggerEvent(event="t/doomed"), retries=0, on_failure=on_failure
    )
    async def fn(ctx: Context) -> None:
        raise NonRetriableError("it broke")

    inngest.send_sync(Event(name="t/doomed"))
    assert only_run("test-app-doomed").status == RunStatus.FAILED
    assert only_run("test-app-doomed-failure").status == RunStatus.COMPLETED
    assert seen == ["it broke"]


def test_async_cancellation_while_sleeping_and_is_cancelled_in_a_step(inngest: Inngest) -> None:
    observed: list[bool] = []

    async def look(ctx: Context) -> bool:
        cancelled = ctx.is_cancelled()  # a plain bool in async code too (no await)
        observed.append(cancelled)
        return cancelled

    @inngest.create_function(fn_id="long", trigger=TriggerEvent(event="t/long"))
    async def fn(ctx: Context) -> None:
        await ctx.step.run("look", look, ctx)
        await ctx.step.sleep("nap", timedelta(minutes=5))
        await ctx.step.run("never", lambda: observed.append(True))

    inngest.send_sync(Event(name="t/long"))
    run = only_run("test-app-long")
    assert observed == [False] and run.wait_kind == WaitKind.SLEEP
    cancel_run(run.run_id, reason="test")
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and observed == [False]


def test_steps_awaited_concurrently_fail_with_a_clear_error(inngest: Inngest) -> None:
    async def io(n: int) -> int:
        await asyncio.sleep(0.01)  # the first step is still in flight when the second starts
        return n

    @inngest.create_function(fn_id="gather", trigger=TriggerEvent(event="t/gather"), retries=0)
    async def fn(ctx: Context) -> Any:
        return await asyncio.gather(ctx.step.run("a", io, 1), ctx.step.run("b", io, 2))

    inngest.send_sync(Event(name="t/gather"))
    run = only_run("test-app-gather")
    assert run.status == RunStatus.FAILED
    assert "await one step at a time" in error_message(run)
    assert "ctx.group.parallel" in error_message(run)


def test_a_step_inside_a_step_fails_as_in_inngest_py(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="nested", trigger=TriggerEvent(event="t/nested"), retries=0)
    async def fn(ctx: Context) -> None:
        async def outer() -> None:
            await ctx.step.run("inner", lambda: 1)

        await ctx.step.run("outer", outer)

    inngest.send_sync(Event(name="t/nested"))
    run = only_run("test-app-nested")
    assert run.status == RunStatus.FAILED
    assert error_message(run) == "Nested steps are not supported."


def test_a_sync_handler_annotated_context_still_runs(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="old", trigger=TriggerEvent(event="t/old"))
    def fn(ctx: Context) -> int:  # written before Context meant the async one
        return ctx.step.run("one", lambda: 1)  # type: ignore[return-value]

    inngest.send_sync(Event(name="t/old"))
    assert only_run("test-app-old").output == 1


def test_async_code_in_a_sync_function_fails_with_a_clear_error(inngest: Inngest) -> None:
    async def fetch() -> int:
        return 1

    @inngest.create_function(fn_id="mixed", trigger=TriggerEvent(event="t/mixed"), retries=0)
    def fn(ctx: ContextSync) -> Any:
        return ctx.step.run("fetch", fetch)

    inngest.send_sync(Event(name="t/mixed"))
    run = only_run("test-app-mixed")
    assert run.status == RunStatus.FAILED
    assert "the function is sync" in error_message(run)
    assert "async def" in error_message(run)


# -- definition errors ------------------------------------------------------------------------


async def async_handler(ctx: Context) -> None:
    return None


def sync_handler(ctx: ContextSync) -> None:
    return None


class AsyncMiddleware(Middleware):
    pass


def test_on_failure_must_match_the_handler_kind(inngest: Inngest) -> None:
    with pytest.raises(ConfigurationError, match="non-async function cannot have an async"):
        inngest.create_function(
            fn_id="a", trigger=TriggerEvent(event="t/a"), on_failure=async_handler
        )(sync_handler)
    with pytest.raises(ConfigurationError, match="async function cannot have a non-async"):
        inngest.create_function(
            fn_id="b", trigger=TriggerEvent(event="t/b"), on_failure=sync_handler
        )(async_handler)
    assert inngest.registry.all() == []


def test_async_middleware_on_a_sync_function_is_refused_when_defined(inngest: Inngest) -> None:
    with pytest.raises(ConfigurationError, match="AsyncMiddleware is async"):
        inngest.create_function(
            fn_id="a", trigger=TriggerEvent(event="t/a"), middleware=[AsyncMiddleware]
        )(sync_handler)
    # An async function takes both kinds.
    inngest.create_function(
        fn_id="b", trigger=TriggerEvent(event="t/b"), middleware=[AsyncMiddleware, MiddlewareSync]
    )(async_handler)


def test_async_client_middleware_added_after_a_sync_function_is_refused(inngest: Inngest) -> None:
    inngest.create_function(fn_id="a", trigger=TriggerEvent(event="t/a"))(sync_handler)
    with pytest.raises(ConfigurationError, match="AsyncMiddleware is async"):
        inngest.add_middleware(AsyncMiddleware)
    assert inngest.middleware == []


def test_system_check_e030_reports_kinds_that_do_not_fit(inngest: Inngest) -> None:
    function = inngest.create_function(fn_id="a", trigger=TriggerEvent(event="t/a"))(sync_handler)
    inngest.middleware = [AsyncMiddleware]  # bypassing add_middleware's own check
    errors = [m for m in checks.run_checks() if m.id == "django_inngest.E030"]
    assert len(errors) == 1 and function.id in errors[0].msg
    assert "AsyncMiddleware is async" in errors[0].msg
