"""``group.parallel`` of a sync handler: Inngest's plan-then-run, in ``WAIT`` or ``RACE`` mode.

Planning runs each branch until it reaches a step that has not run yet (``step_kinds.recall``
collects it); those steps start together (``step_kinds.start_planned``) and run concurrently,
each on its own thread with its own database connection. Then:

- ``WAIT`` (the default): once every step of the round has ended, their results commit together
  and the branches are planned again: they advance in lock-step rounds.
- ``RACE``: each step's result commits as soon as it ends, and the branches are planned again
  at once, so a branch whose step ended goes on to its next step while the other branches'
  steps still run (inngest-py ``ParallelMode.RACE``: the server runs a discovery after each
  step). ``parallel`` still returns every branch's result, in order, as in ``WAIT``.

Both end when a planning pass finds nothing new and nothing is in flight; the branches then
replay from memo to give the results. A branch that sleeps or waits pauses the run in that final
pass; a step to retry pauses it until the earliest retry is due. Re-planning replays every branch
from the group's step-ID counters, so ``:n`` suffixes stay deterministic; branch code outside
steps runs only on the handler's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, TypeVar

from django.db import connections

from django_inngest.engine import gates, step_kinds
from django_inngest.engine.attempts import within_step
from django_inngest.engine.control import Planned, PlanningInterrupt, RunOp
from django_inngest.engine.invocation import Invocation
from django_inngest.engine.leases import lease_keeper
from django_inngest.engine.segments import (
    HookFailed,
    Segments,
    as_step_memo,
    is_last_attempt,
    run_sync,
)
from django_inngest.middleware import StepMemo
from django_inngest.models import StepRun, StepStatus, WaitKind
from django_inngest.sdk_types import ParallelMode

T = TypeVar("T")
#: Most steps of one group running at once (the others queue).
MAX_PARALLEL_THREADS = 8
Finished = tuple[StepRun, bool, Any]


def steps_at_once(inv: Invocation) -> int:
    """A run under a concurrency limit holds one slot for its turn, so its parallel steps
    run one at a time: the limit counts executing steps, never more than it allows."""
    return 1 if gates.concurrency_keys(inv.run) else MAX_PARALLEL_THREADS


def run_group(
    inv: Invocation, seg: Segments, branches: Sequence[Callable[[], T]], mode: ParallelMode
) -> tuple[T, ...]:
    if inv.planning is not None:  # nested parallel: the outer one plans
        return tuple(branch() for branch in branches)
    counters = dict(inv.seen_ids)
    in_flight: dict[str, tuple[StepRun, Future[tuple[bool, Any]]]] = {}
    wakes: dict[str, datetime] = {}  # steps that must wait for their retry
    until = FIRST_COMPLETED if mode is ParallelMode.RACE else ALL_COMPLETED
    with (
        lease_keeper.watch(inv.run.run_id, inv.owner),
        ThreadPoolExecutor(steps_at_once(inv), thread_name_prefix="inngest-step") as pool,
    ):
        while not (wakes and mode is ParallelMode.WAIT):  # WAIT: a retry holds the next round
            known = {*in_flight, *wakes}
            planned = [p for p in plan(inv, branches, counters) if p.op.uid not in known]
            if planned or in_flight:
                run_sync(seg.planned([p.op.name for p in planned]))
            if planned:
                started, waiting = step_kinds.start_planned(inv, planned, may_yield=not in_flight)
                wakes.update(waiting)
                for step, op in started:
                    in_flight[op.uid] = (step, pool.submit(run_planned_step, inv, seg, step, op))
            if not in_flight:
                break
            wait([future for _, future in in_flight.values()], return_when=until)
            finished = take_finished(in_flight, lambda future: future.done())
            retries = step_kinds.commit_planned(inv, [(s, *f.result()) for s, f in finished])
            wakes.update(retries)
            if not (wakes and mode is ParallelMode.WAIT):  # the handler resumes
                run_sync(seg.open(settled_memos(step for step, _ in finished)))
    if wakes:
        inv.pause(min(wakes.values()), WaitKind.RETRY)
    inv.seen_ids = dict(counters)
    return tuple(branch() for branch in branches)


def plan(
    inv: Invocation, branches: Sequence[Callable[[], Any]], counters: dict[str, int]
) -> list[Planned]:
    """Run each branch, quietly, up to its first step that has not run; returns those steps."""
    inv.seen_ids = dict(counters)  # every pass replays the branches from the same IDs
    inv.planning = []
    with inv.quiet():
        try:
            for branch in branches:
                try:
                    branch()
                except PlanningInterrupt:
                    pass
                except Exception:
                    continue  # it fails for real in the final pass
            return inv.planning
        finally:
            inv.planning = None


F = TypeVar("F")


def take_finished(
    in_flight: dict[str, tuple[StepRun, F]], is_done: Callable[[F], bool]
) -> list[tuple[StepRun, F]]:
    """Remove the steps that ended from ``in_flight``; returns them, in planning order."""
    done = [uid for uid, (_, handle) in in_flight.items() if is_done(handle)]
    return [in_flight.pop(uid) for uid in done]


def settled_memos(steps: Any) -> dict[str, StepMemo]:
    """The memos the handler resumes with after a commit (not the steps to retry)."""
    return {
        step.step_id: as_step_memo(step)
        for step in steps
        if step.status in (StepStatus.COMPLETED, StepStatus.FAILED)
    }


def run_planned_step(inv: Invocation, seg: Segments, step: StepRun, op: RunOp) -> tuple[bool, Any]:
    """One planned step on a step thread, as its own middleware segment (case f.)."""
    step_seg = seg.for_step()
    try:
        run_sync(step_seg.open({}))
        with within_step(inv.run.run_id, step.attempts - 1):
            ok, outcome = step_kinds.call_step(op.handler, op.args)
        if step_seg.active:
            final = not ok and is_last_attempt(inv, step, outcome)
            ok, outcome = run_sync(step_seg.step_ran(op.name, ok, outcome, final=final))
            run_sync(step_seg.responded())
    except HookFailed as failed:
        return False, failed.error  # retried like a step whose body raised
    finally:
        connections.close_all()  # a step thread's connections must not outlive it
    return ok, outcome
