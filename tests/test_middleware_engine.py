"""Middleware run by the real engine (``create_function(middleware=...)`` and the client's), at
the call points ``middleware.manager`` defines, for sync and async functions. The sequence test
is inngest-py 0.5.19's ``function_middleware`` case, as ``test_middleware_segments`` drives it
through a fake engine; here the engine itself must produce it. On the code this branch started
from, ``create_function(middleware=...)`` raised ConfigurationError."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from django_inngest import (
    Context,
    ContextSync,
    Event,
    Inngest,
    Middleware,
    MiddlewareSync,
    StepError,
    StepMemos,
    TransformOutputResult,
    TriggerEvent,
)
from django_inngest.contrib.step_timing import StepTimingMiddleware
from django_inngest.engine.context import BaseContext
from django_inngest.function import Function
from django_inngest.models import Event as StoredEvent
from django_inngest.models import RunStatus, StepStatus, WaitKind
from django_inngest.testing import drain
from tests.helpers import make_due, only_run
from tests.test_middleware import recording

pytestmark = pytest.mark.django_db(transaction=True)

#: inngest-py's function_middleware sequence (see test_middleware_segments): three segments.
SEQUENCE = [
    "hook.transform_input",
    "hook.before_execution",
    "hook.after_execution",
    "hook:transform_output",
    "hook.transform_output",
    "hook.before_response",
    "hook.transform_input",
    "hook.before_execution",
    "hook.before_send_events",
    "hook.after_send_events",
    "hook.after_execution",
    "hook:transform_output",
    "hook.transform_output",
    "hook.before_response",
    "hook.transform_input",
    "hook.before_execution",
    "hook.after_execution",
    "hook:transform_output",
    "hook.transform_output",
    "hook.before_response",
]


def transforming(base: type, log: list[str]) -> type:
    def transform_output(self: Any, result: TransformOutputResult) -> None:
        log.append("hook:transform_output")
        if result.output == "original output":
            result.output = "transformed output"

    async def atransform_output(self: Any, result: TransformOutputResult) -> None:
        transform_output(self, result)

    hook = atransform_output if base is Middleware else transform_output
    return type("Transform", (base,), {"transform_output": hook})


@pytest.mark.parametrize(
    ("kind", "base"),
    [("sync", MiddlewareSync), ("async", MiddlewareSync), ("async", Middleware)],
    ids=["sync-fn", "async-fn-sync-mw", "async-fn-async-mw"],
)
def test_the_engine_calls_hooks_in_inngest_pys_sequence(
    inngest: Inngest, kind: str, base: type
) -> None:
    log: list[str] = []
    middleware = [recording(base, "hook", log), transforming(base, log)]
    options: dict[str, Any] = {"trigger": TriggerEvent(event="t/mw"), "middleware": middleware}
    if kind == "sync":

        @inngest.create_function(fn_id="mw", **options)
        def fn(ctx: ContextSync) -> str:
            log.append(f"fn: step_1 returned {ctx.step.run('step_1', lambda: 'original output')!r}")
            ctx.step.send_event("send", Event(name="t/sent"))
            return "done"

    else:

        @inngest.create_function(fn_id="mw", **options)
        async def afn(ctx: Context) -> str:
            out = await ctx.step.run("step_1", lambda: "original output")
            log.append(f"fn: step_1 returned {out!r}")
            await ctx.step.send_event("send", Event(name="t/sent"))
            return "done"

    inngest.send_sync(Event(name="t/mw"))
    run = only_run("test-app-mw")
    assert (run.status, run.output) == (RunStatus.COMPLETED, "done")
    assert [line for line in log if line.startswith("hook")] == SEQUENCE
    # The handler got, and the memo holds, the transformed output.
    assert "fn: step_1 returned 'transformed output'" in log
    assert run.steps.get(step_id="step_1").output == "transformed output"


def test_client_middleware_run_before_the_functions_and_after_hooks_unwind(
    inngest: Inngest,
) -> None:
    log: list[str] = []
    inngest.add_middleware(recording(MiddlewareSync, "client1", log))
    inngest.add_middleware(recording(MiddlewareSync, "client2", log))

    @inngest.create_function(
        fn_id="order",
        trigger=TriggerEvent(event="t/order"),
        middleware=[recording(MiddlewareSync, "fn", log)],
    )
    def fn(ctx: ContextSync) -> str:
        return "ok"

    inngest.send_sync(Event(name="t/order"))
    assert only_run("test-app-order").status == RunStatus.COMPLETED
    assert [line for line in log if line.endswith(".transform_input")] == [
        "client1.transform_input",
        "client2.transform_input",
        "fn.transform_input",
    ]
    assert [line for line in log if line.endswith(".after_execution")] == [
        "fn.after_execution",
        "client2.after_execution",
        "client1.after_execution",
    ]


def test_a_later_turn_replays_every_memo_before_execution(inngest: Inngest) -> None:
    log: list[str] = []
    seen_memos: list[list[str]] = []

    class Memos(MiddlewareSync):
        def transform_input(self, ctx: BaseContext, function: Function, steps: StepMemos) -> None:
            seen_memos.append(sorted(str(m.data) for m in steps.values()))
            for memo in steps.values():
                if memo.data == "A":
                    memo.data = "A (from middleware)"  # e.g. offloaded state loaded back

    @inngest.create_function(
        fn_id="later",
        trigger=TriggerEvent(event="t/later"),
        middleware=[recording(MiddlewareSync, "hook", log), Memos],
    )
    def fn(ctx: ContextSync) -> str:
        log.append("fn: start")
        a = ctx.step.run("a", lambda: "A")
        ctx.step.sleep("nap", timedelta(minutes=1))
        log.append(f"fn: a is {a}")
        return a

    inngest.send_sync(Event(name="t/later"))
    run = only_run("test-app-later")
    assert run.wait_kind == WaitKind.SLEEP
    log.clear()
    make_due(run)
    drain()
    run.refresh_from_db()
    assert run.output == "A (from middleware)"
    assert log[:4] == [
        "hook.transform_input",
        "fn: start",
        "hook.before_execution",
        "fn: a is A (from middleware)",
    ]
    assert seen_memos[-1] == ["A", "None"]  # the step and the sleep, resolved on wake


def test_an_error_set_on_a_step_result_is_its_final_error(inngest: Inngest) -> None:
    class Reject(MiddlewareSync):
        def transform_output(self, result: TransformOutputResult) -> None:
            if result.step is not None and result.output == "bad":
                result.error = ValueError("rejected by middleware")

    @inngest.create_function(
        fn_id="reject", trigger=TriggerEvent(event="t/reject"), middleware=[Reject], retries=3
    )
    def fn(ctx: ContextSync) -> str:
        try:
            ctx.step.run("check", lambda: "bad")
        except StepError as err:
            return f"{err.name}: {err.message}"
        return "accepted"

    inngest.send_sync(Event(name="t/reject"))
    run = only_run("test-app-reject")
    assert (run.status, run.output) == (RunStatus.COMPLETED, "ValueError: rejected by middleware")
    step = run.steps.get()
    assert (step.status, step.attempts) == (StepStatus.FAILED, 1)


def test_a_middleware_may_turn_a_handler_error_into_an_output(inngest: Inngest) -> None:
    class Rescue(Middleware):
        async def transform_output(self, result: TransformOutputResult) -> None:
            if result.step is None and result.error is not None:
                result.error, result.output = None, f"rescued from {result.error}"

    @inngest.create_function(
        fn_id="rescue", trigger=TriggerEvent(event="t/rescue"), middleware=[Rescue]
    )
    async def fn(ctx: Context) -> None:
        raise RuntimeError("boom")

    inngest.send_sync(Event(name="t/rescue"))
    run = only_run("test-app-rescue")
    assert (run.status, run.output) == (RunStatus.COMPLETED, "rescued from boom")


def test_a_failing_hook_fails_the_turn_even_if_the_handler_catches_everything(
    inngest: Inngest,
) -> None:
    class Broken(MiddlewareSync):
        def after_execution(self) -> None:
            raise RuntimeError("hook broke")

    @inngest.create_function(
        fn_id="broken", trigger=TriggerEvent(event="t/broken"), middleware=[Broken], retries=0
    )
    def fn(ctx: ContextSync) -> str:
        try:
            ctx.step.run("s", lambda: 1)
        except Exception:
            return "swallowed"
        return "no error"

    inngest.send_sync(Event(name="t/broken"))
    run = only_run("test-app-broken")
    assert run.status == RunStatus.FAILED
    assert run.error["message"] == "hook broke"
    assert not run.steps.filter(status=StepStatus.COMPLETED).exists()  # the result was dropped


def test_before_send_events_may_change_what_is_sent(inngest: Inngest) -> None:
    class Stamp(Middleware):
        async def before_send_events(self, events: list[Any]) -> None:
            for event in events:
                event.data["stamped"] = True

    @inngest.create_function(
        fn_id="stamp", trigger=TriggerEvent(event="t/stamp"), middleware=[Stamp]
    )
    async def fn(ctx: Context) -> list[str]:
        return await ctx.step.send_event("send", Event(name="t/stamped", data={"n": 1}))

    inngest.send_sync(Event(name="t/stamp"))
    assert only_run("test-app-stamp").status == RunStatus.COMPLETED
    assert StoredEvent.objects.get(name="t/stamped").data == {"n": 1, "stamped": True}


def test_parallel_steps_each_run_as_their_own_segment(inngest: Inngest) -> None:
    log: list[str] = []

    @inngest.create_function(
        fn_id="par",
        trigger=TriggerEvent(event="t/par"),
        middleware=[recording(MiddlewareSync, "hook", log)],
    )
    def fn(ctx: ContextSync) -> Any:
        return list(
            ctx.group.parallel(
                (lambda: ctx.step.run("a", lambda: 1), lambda: ctx.step.run("b", lambda: 2))
            )
        )

    inngest.send_sync(Event(name="t/par"))
    assert only_run("test-app-par").output == [1, 2]
    counts = {hook: log.count(f"hook.{hook}") for hook in ("transform_input", "before_response")}
    # the turn's first segment (planning), one per step, then the resumed handler's segment
    assert counts == {"transform_input": 4, "before_response": 4}
    assert log[:4] == [
        "hook.transform_input",
        "hook.before_execution",
        "hook.after_execution",  # f.: planned two steps; no transform_output for several
        "hook.before_response",
    ]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_step_timing_logs_each_executed_step_once(
    inngest: Inngest, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    options: dict[str, Any] = {
        "trigger": TriggerEvent(event="t/timed"),
        "middleware": [StepTimingMiddleware],
        "retries": 2,
    }
    if kind == "sync":

        @inngest.create_function(fn_id="timed", **options)
        def fn(ctx: ContextSync) -> str:
            ctx.step.run("fetch", lambda: "data")
            ctx.step.sleep("nap", timedelta(minutes=1))
            return ctx.step.run("flaky", flaky)

    else:

        @inngest.create_function(fn_id="timed", **options)
        async def afn(ctx: Context) -> str:
            await ctx.step.run("fetch", lambda: "data")
            await ctx.step.sleep("nap", timedelta(minutes=1))
            return await ctx.step.run("flaky", flaky)

    with caplog.at_level(logging.INFO, logger="django_inngest.contrib.step_timing"):
        inngest.send_sync(Event(name="t/timed"))
        run = only_run("test-app-timed")
        for _ in range(3):
            make_due(run)
            drain()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    records = [r for r in caplog.records if r.name == "django_inngest.contrib.step_timing"]
    # fetch once (never again on replay), no record for the sleep, flaky's two attempts.
    assert [(r.step_id, r.outcome) for r in records] == [  # type: ignore[attr-defined]
        ("fetch", "ok"),
        ("flaky", "error"),
        ("flaky", "ok"),
    ]
    assert all(r.run_id == run.run_id and r.duration_ms >= 0 for r in records)  # type: ignore[attr-defined]
