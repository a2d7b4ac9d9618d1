"""One worker's turn at a run: the memo table and the commit protocol.

The memo table holds the run's steps as committed so far, and counts how many of them the
handler has not reached again yet (while it replays them, its logger is silent). The commit
protocol is how a turn writes: every write is conditional on the run still being Running under
this turn's lease (``FunctionRun.objects.owned_by``), so a cancel or a lease takeover committed
first turns the write into ``Abandon``; a late result is dropped, never stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

from django.utils import timezone

from django_inngest import database, executor
from django_inngest.conf import settings
from django_inngest.engine import cancellation, gates
from django_inngest.engine.control import Abandon, Planned, StepOp, Suspend
from django_inngest.exceptions import StepError
from django_inngest.function import Function
from django_inngest.models import (
    Cancellation,
    CancelSource,
    FunctionRun,
    RunStatus,
    StepKind,
    StepRun,
    StepStatus,
    WaitKind,
)

#: Memos a handler replays silently: steps reached in an earlier turn, and a sleep or wait that
#: is being resolved now (Inngest memoizes it on wake).
_REPLAYED = (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SLEEPING, StepStatus.WAITING)


class Invocation:
    """One worker's turn at a run."""

    def __init__(self, run: FunctionRun, function: Function, owner: str, *, first: bool) -> None:
        self.run = run
        self.function = function
        self.owner = owner
        self.deadline = time.monotonic() + settings.INVOCATION_BUDGET_SECONDS
        # A run claimed for the first time has no steps yet: skip the query.
        self.memos: dict[str, StepRun] = {} if first else {m.step_id: m for m in run.steps.all()}
        self._unconsumed = sum(1 for m in self.memos.values() if m.status in _REPLAYED)
        self._positions = len(self.memos)
        #: How often each step ID was used in this pass over the handler (repeats get ":n").
        self.seen_ids: dict[str, int] = {}
        # The claim found whether the function has any bulk cancellation: if none, no query.
        self._cancellations: list[Cancellation] | None = (
            None if getattr(run, "has_bulk_cancellations", True) else []
        )
        self.progressed = False
        #: While ``group.parallel`` plans, new ``step.run`` ops are collected here, not run.
        self.planning: list[Planned] | None = None
        self.trigger = run.event.as_payload()

    # -- the memo table -------------------------------------------------------------------------
    def unique_id(self, step_id: str) -> str:
        """Inngest's step IDs: the first use of an ID is bare; repeats get ":1", ":2", ..."""
        count = self.seen_ids.get(step_id, 0)
        self.seen_ids[step_id] = count + 1
        return step_id if count == 0 else f"{step_id}:{count}"

    def memo_for(self, op: StepOp) -> StepRun | None:
        memo = self.memos.get(op.uid)
        if memo is not None and memo.kind != op.kind:
            raise StepError(
                "NonDeterministicError",
                f"step {op.uid!r} was a {memo.kind} step in an earlier attempt, now {op.kind}",
                step_id=op.uid,
            )
        return memo

    def new_step(
        self, uid: str, name: str, kind: StepKind, status: StepStatus, **fields: Any
    ) -> StepRun:
        step = StepRun(
            run_id=self.run.run_id,
            step_id=uid,
            position=self._positions,
            kind=kind,
            status=status,
            started_at=timezone.now(),
            **fields,
        )
        self._positions += 1
        self.memos[uid] = step
        return step

    @property
    def replaying(self) -> bool:
        return self._unconsumed > 0

    def consume_memo(self) -> None:
        """A memoized step was reached again."""
        self._unconsumed = max(0, self._unconsumed - 1)

    def end_replay(self) -> None:
        """A step without a usable memo was reached: replay is over, log lines are real again."""
        self._unconsumed = 0

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Silence the function logger and keep the replay count while parallel plans."""
        saved = self._unconsumed
        self._unconsumed = 1 << 30
        try:
            yield
        finally:
            self._unconsumed = saved

    # -- the commit protocol --------------------------------------------------------------------
    def lock(self) -> None:
        """Row-lock our run for the current transaction; Abandon if cancelled or taken over."""
        if not FunctionRun.objects.lock_owned(self.run.run_id, self.owner):
            raise Abandon()

    def commit(self, step: StepRun) -> None:
        """Commit one step's row in one statement, or Abandon (its result is dropped)."""
        if not StepRun.objects.save_if_owned(step, self.owner):
            raise Abandon()

    def commit_locked(self, *steps: StepRun) -> None:
        """Commit step rows in one transaction, under the run's row lock."""
        with database.atomic():
            self.lock()
            for step in steps:
                step.save()

    def pause(
        self,
        ready_at: datetime | None,
        wait_kind: WaitKind,
        *,
        step: StepRun | None = None,
        then: Callable[[], None] | None = None,
        dispatch: bool = False,
        attempt: int | None = None,
    ) -> NoReturn:
        """Commit the pause (with the step row and ``then``'s writes), release the lease and
        raise Suspend: the worker is free, and the run resumes by replay when it is woken."""
        now = timezone.now()
        if attempt is None and self.progressed:
            # The run made progress since its last failure: the handler's failure count
            # (Inngest's attempt of the unit of work) starts again from 0.
            attempt = 0
        with database.atomic():
            paused = FunctionRun.objects.pause(
                self.run.run_id,
                self.owner,
                ready_at=ready_at,
                wait_kind=wait_kind,
                dispatched_at=now if dispatch else None,
                attempt=attempt,
            )
            if not paused:
                raise Abandon()
            if step is not None:
                step.save()
            if then is not None:
                then()
            if dispatch:
                executor.dispatch_on_commit([self.run.run_id])
            if self.run.gated:
                gates.release([self.run])  # a paused run holds no concurrency slot
        raise Suspend()

    # -- cancellation and the budget ----------------------------------------------------------
    def is_cancelled(self) -> bool:
        """Beyond Inngest: a step may ask whether its run was cancelled (``ctx.is_cancelled``)."""
        cancelled = FunctionRun.objects.filter(pk=self.run.run_id, status=RunStatus.CANCELLED)
        return cancelled.exists() or self._bulk_cancellation() is not None

    def _bulk_cancellation(self) -> Cancellation | None:
        """Inngest's lazy check: is this run inside an active bulk cancellation's window and `if`?"""
        if self._cancellations is None:
            self._cancellations = list(
                Cancellation.objects.covering(self.run.function_id, self.run.created_at)
            )
        for candidate in self._cancellations:
            if candidate.matches(self.trigger):
                return candidate
        return None

    def before_step(self) -> None:
        """Before each new step: stop if cancelled in bulk, yield the worker if over budget."""
        bulk = self._bulk_cancellation()
        if bulk is not None:
            cancellation.cancel_run(
                self.run.run_id,
                source=CancelSource.BULK,
                reason=f"bulk cancellation {bulk.id}",
                cancellation=bulk,
            )
            raise Abandon()
        # Yield once over budget, but only after progress, so a run always advances.
        if self.progressed and time.monotonic() > self.deadline:
            self.pause(timezone.now(), WaitKind.NONE, dispatch=True)
