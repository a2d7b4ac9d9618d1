"""``group.parallel(..., parallel_mode=ParallelMode.RACE)`` per inngest-py 0.5.19: a branch whose
step ended goes on to its next step while the other branches' steps still run, and ``parallel``
still returns every branch's result, in order (inngest-py's ``group.py`` returns the outputs of
all callables in both modes). ``WAIT``, the default, advances the branches in lock-step rounds.

The fast branch ``a`` (a.1 then a.2) and the slow branch ``b`` (b.1, which waits up to 2 s for
a.2 to be committed, then b.2) tell the modes apart without timing anything: under RACE, a.2
runs and commits while b.1 waits; under WAIT it cannot start before b.1 has ended.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from django_inngest import Context, ContextSync, Event, Inngest, ParallelMode, TriggerEvent
from django_inngest.models import RunStatus, StepRun, StepStatus
from tests.helpers import only_run

pytestmark = pytest.mark.django_db(transaction=True)

SIGNAL_TIMEOUT = 2.0


def a2_committed() -> bool:
    return StepRun.objects.filter(step_id="a.2", status=StepStatus.COMPLETED).exists()


def wait_for_a2() -> str:
    deadline = time.monotonic() + SIGNAL_TIMEOUT
    while time.monotonic() < deadline:
        if a2_committed():
            return "b.1 saw a.2"
        time.sleep(0.02)
    return "b.1 before a.2"


def define_sync(inngest: Inngest, mode: ParallelMode | None) -> None:
    def a2() -> str:
        return "a.2"

    def b1() -> str:
        return wait_for_a2()  # on its step thread, with its own connection

    @inngest.create_function(fn_id="race", trigger=TriggerEvent(event="t/race"))
    def fn(ctx: ContextSync) -> Any:
        def branch_a() -> list[str]:
            return [ctx.step.run("a.1", lambda: "a.1"), ctx.step.run("a.2", a2)]

        def branch_b() -> list[str]:
            return [ctx.step.run("b.1", b1), ctx.step.run("b.2", lambda: "b.2")]

        if mode is None:
            return list(ctx.group.parallel((branch_a, branch_b)))
        return list(ctx.group.parallel((branch_a, branch_b), parallel_mode=mode))


def define_async(inngest: Inngest, mode: ParallelMode | None) -> None:
    async def a2() -> str:
        return "a.2"

    async def b1() -> str:
        deadline = time.monotonic() + SIGNAL_TIMEOUT
        while time.monotonic() < deadline:
            if await sync_to_async(a2_committed, thread_sensitive=False)():
                return "b.1 saw a.2"
            await asyncio.sleep(0.02)
        return "b.1 before a.2"

    async def a1() -> str:
        return "a.1"

    @inngest.create_function(fn_id="race", trigger=TriggerEvent(event="t/race"))
    async def fn(ctx: Context) -> Any:
        async def branch_a() -> list[str]:
            return [await ctx.step.run("a.1", a1), await ctx.step.run("a.2", a2)]

        async def branch_b() -> list[str]:
            return [await ctx.step.run("b.1", b1), await ctx.step.run("b.2", lambda: "b.2")]

        if mode is None:
            return list(await ctx.group.parallel((branch_a, branch_b)))
        return list(await ctx.group.parallel((branch_a, branch_b), parallel_mode=mode))


DEFINE = {"sync": define_sync, "async": define_async}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_race_lets_a_branch_go_on_while_others_run_and_returns_every_result(
    inngest: Inngest, kind: str
) -> None:
    DEFINE[kind](inngest, ParallelMode.RACE)
    inngest.send_sync(Event(name="t/race"))
    run = only_run("test-app-race")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == [["a.1", "a.2"], ["b.1 saw a.2", "b.2"]]
    ended = dict(run.steps.values_list("step_id", "ended_at"))
    # inngest-py's parallel_mode_race case: completed in the order a.1, a.2, b.1, b.2.
    assert sorted(ended, key=lambda step_id: ended[step_id]) == ["a.1", "a.2", "b.1", "b.2"]


@pytest.mark.parametrize("mode", [None, ParallelMode.WAIT], ids=["default", "WAIT"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wait_advances_the_branches_in_rounds(
    inngest: Inngest, kind: str, mode: ParallelMode | None
) -> None:
    DEFINE[kind](inngest, mode)
    inngest.send_sync(Event(name="t/race"))
    run = only_run("test-app-race")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == [["a.1", "a.2"], ["b.1 before a.2", "b.2"]]
    steps = {s.step_id: s for s in run.steps.all()}
    assert steps["a.2"].started_at >= steps["b.1"].ended_at  # the second round


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_parallel_mode_must_be_a_parallel_mode(inngest: Inngest, kind: str) -> None:
    if kind == "sync":

        @inngest.create_function(fn_id="bad", trigger=TriggerEvent(event="t/bad"), retries=0)
        def fn(ctx: ContextSync) -> Any:
            return ctx.group.parallel((lambda: 1,), parallel_mode="race")  # type: ignore[arg-type]

    else:

        @inngest.create_function(fn_id="bad", trigger=TriggerEvent(event="t/bad"), retries=0)
        async def afn(ctx: Context) -> Any:
            return await ctx.group.parallel((lambda: ctx.step.run("x", lambda: 1),), "race")  # type: ignore[arg-type]

    inngest.send_sync(Event(name="t/bad"))
    run = only_run("test-app-bad")
    assert run.status == RunStatus.FAILED
    assert "parallel_mode must be a ParallelMode" in run.error["message"]
