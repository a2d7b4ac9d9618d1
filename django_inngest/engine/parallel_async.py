"""``await ctx.group.parallel(...)`` of an async handler: the scheduling of ``engine.parallel``
(plan, then ``WAIT`` rounds or ``RACE``), with the planned steps as tasks on the event loop.

``async def`` bodies run concurrently on the loop; other bodies run on step threads, each with
its own database connection. Starting and committing the steps (``step_kinds.start_planned``,
``commit_planned``) and pausing run on the worker thread with the loop suspended
(``bridge.outside_loop``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from django_inngest.engine import step_kinds
from django_inngest.engine.attempts import within_step
from django_inngest.engine.bridge import SyncRunner, call_body, on_threads, outside_loop
from django_inngest.engine.control import Planned, PlanningInterrupt, RunOp
from django_inngest.engine.invocation import Invocation
from django_inngest.engine.leases import lease_keeper
from django_inngest.engine.parallel import settled_memos, steps_at_once, take_finished
from django_inngest.engine.segments import HookFailed, Segments, is_last_attempt
from django_inngest.models import StepRun, WaitKind
from django_inngest.sdk_types import ParallelMode

T = TypeVar("T")
Branch = Callable[[], Awaitable[T]]


async def run_group(
    inv: Invocation,
    seg: Segments,
    branches: Sequence[Branch[T]],
    mode: ParallelMode,
) -> tuple[T, ...]:
    if inv.planning is not None:  # nested parallel: the outer one plans
        return tuple([await _call(branch) for branch in branches])
    counters = dict(inv.seen_ids)
    in_flight: dict[str, tuple[StepRun, asyncio.Task[tuple[bool, Any]]]] = {}
    wakes: dict[str, datetime] = {}
    until = asyncio.FIRST_COMPLETED if mode is ParallelMode.RACE else asyncio.ALL_COMPLETED
    pool = ThreadPoolExecutor(steps_at_once(inv), thread_name_prefix="inngest-step")
    one_at_a_time = asyncio.Semaphore(steps_at_once(inv))
    try:
        with lease_keeper.watch(inv.run.run_id, inv.owner):
            while not (wakes and mode is ParallelMode.WAIT):  # WAIT: a retry holds the round
                known = {*in_flight, *wakes}
                planned = [p for p in await plan(inv, branches, counters) if p.op.uid not in known]
                if planned or in_flight:
                    await seg.planned([p.op.name for p in planned])
                if planned:
                    started, waiting = outside_loop(
                        step_kinds.start_planned, inv, planned, may_yield=not in_flight
                    )
                    wakes.update(waiting)
                    for step, op in started:
                        task = asyncio.get_running_loop().create_task(
                            _limited(
                                one_at_a_time,
                                run_planned_step(inv, seg, step, op, on_threads(pool)),
                            )
                        )
                        in_flight[op.uid] = (step, task)
                if not in_flight:
                    break
                await asyncio.wait([task for _, task in in_flight.values()], return_when=until)
                finished = take_finished(in_flight, lambda task: task.done())
                retries = outside_loop(
                    step_kinds.commit_planned, inv, [(s, *t.result()) for s, t in finished]
                )
                wakes.update(retries)
                if not (wakes and mode is ParallelMode.WAIT):  # the handler resumes
                    await seg.open(settled_memos(step for step, _ in finished))
    finally:
        for _, task in in_flight.values():  # only when the run is abandoned or suspended
            task.cancel()
        pool.shutdown(wait=False)
    if wakes:
        outside_loop(inv.pause, min(wakes.values()), WaitKind.RETRY)
    inv.seen_ids = dict(counters)
    return tuple([await _call(branch) for branch in branches])


async def _call(branch: Callable[[], Any]) -> Any:
    result = branch()
    return await result if inspect.isawaitable(result) else result


async def plan(
    inv: Invocation, branches: Sequence[Callable[[], Any]], counters: dict[str, int]
) -> list[Planned]:
    """Await each branch, quietly, up to its first step that has not run; returns those."""
    inv.seen_ids = dict(counters)
    inv.planning = []
    with inv.quiet():
        try:
            for branch in branches:
                try:
                    await _call(branch)
                except PlanningInterrupt:
                    pass
                except Exception:
                    continue  # it fails for real in the final pass
            return inv.planning
        finally:
            inv.planning = None


async def _limited(
    semaphore: asyncio.Semaphore, body: Coroutine[Any, Any, tuple[bool, Any]]
) -> tuple[bool, Any]:
    async with semaphore:
        return await body


async def run_planned_step(
    inv: Invocation, seg: Segments, step: StepRun, op: RunOp, on_thread: SyncRunner
) -> tuple[bool, Any]:
    """One planned step as a task, as its own middleware segment (case f.)."""
    step_seg = seg.for_step()
    try:
        await step_seg.open({})
        with within_step(inv.run.run_id, step.attempts - 1):
            ok, outcome = await call_body(op.handler, op.args, on_thread)
        if step_seg.active:
            final = not ok and is_last_attempt(inv, step, outcome)
            ok, outcome = await step_seg.step_ran(op.name, ok, outcome, final=final)
            await step_seg.responded()
    except HookFailed as failed:
        return False, failed.error  # retried like a step whose body raised
    return ok, outcome
