"""A run of an SDK-served function, as our tables hold it: the memo table seen through the
protocol's eyes, and an ``Invocation`` whose pauses can be gathered.

Memos are the same ``StepRun`` rows as for in-process functions, keyed by the SDK's hashed
step IDs (``display_name`` keeps the ID as written). ``memo_map`` encodes the settled ones
exactly as the SDK parses them (``sdk.wire``); the unsettled ones (sleeping, waiting,
retrying) are the run's *pending set*: a follow-up call to the app is made only once it is
empty, which is Inngest's "wait" mode for ``group.parallel``.

One answer may report several ops at once (a sleep in one parallel branch, a wait in
another). Each goes through the engine's own executor (``step_kinds.perform``), which pauses
the run; ``RemoteInvocation.begin_gathering`` collects those pauses so they commit together as one
pause, until the earliest time any of them may be settled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django_inngest.engine import step_kinds
from django_inngest.engine.control import InvokeOp, SleepOp, StepOp, WaitOp
from django_inngest.engine.invocation import Invocation
from django_inngest.exceptions import StepError
from django_inngest.models import StepKind, StepRun, StepStatus, WaitKind
from django_inngest.sdk import wire
from django_inngest.sdk.responses import SdkError

SETTLED = (StepStatus.COMPLETED, StepStatus.FAILED)
#: The name ``step_kinds`` gives an invoke that timed out; the SDK expects Inngest's.
INVOKE_TIMEOUT = "InvokeTimeoutError"


class Gathered(BaseException):
    """An executor asked to pause while pauses are being gathered (see ``begin_gathering``)."""


@dataclass(frozen=True)
class _Pause:
    ready_at: datetime | None
    wait_kind: WaitKind
    step: StepRun | None
    then: Callable[[], None] | None


@dataclass
class BodyParts:
    """What a turn has canonicalised so far (``remote_body``): the trigger, memos by ID."""

    event: bytes | None = None
    memos: dict[str, bytes] = field(default_factory=dict)


class RemoteInvocation(Invocation):
    """``Invocation`` for a run an SDK app serves; the commit protocol is unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gathered: list[_Pause] | None = None
        #: The canonical JSON of the trigger and settled memos, made once per turn.
        self.body_parts = BodyParts()

    def new_step(
        self, uid: str, name: str, kind: StepKind, status: StepStatus, **fields: Any
    ) -> StepRun:
        step = super().new_step(uid, name, kind, status, **fields)
        step.display_name = name[:255]
        return step

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
        if self._gathered is None or dispatch or attempt is not None:
            super().pause(
                ready_at, wait_kind, step=step, then=then, dispatch=dispatch, attempt=attempt
            )
        self._gathered.append(_Pause(ready_at, wait_kind, step, then))
        raise Gathered()

    def before_step(self) -> None:
        if self._gathered is None:
            super().before_step()
            return
        # While gathering, only the bulk-cancel check: a budget yield would be one more pause.
        progressed, self.progressed = self.progressed, False
        try:
            super().before_step()
        finally:
            self.progressed = progressed

    def begin_gathering(self) -> None:
        """From now on the executors' pauses are collected (each raises ``Gathered``, which
        ``perform_gathered`` swallows) until ``pause_gathered`` commits them as one. Starting
        again, or a real pause meanwhile, drops those gathered so far: they only write rows
        for ops the app reported (the next call reports them again) or wait on rows that
        exist (the next look finds them again)."""
        self._gathered = []

    def gather_pause(self, ready_at: datetime | None, wait_kind: WaitKind) -> None:
        """Gather a pause on a row that exists (a retry not due yet)."""
        assert self._gathered is not None, "begin_gathering first"
        self._gathered.append(_Pause(ready_at, wait_kind, None, None))

    def pause_gathered(self) -> None:
        """Commit every gathered pause as one (rows, listeners, child runs and the run's
        pause in one transaction) and raise ``Suspend``; return if nothing was gathered."""
        pauses, self._gathered = self._gathered or [], None
        if not pauses:
            return
        timers = [p for p in pauses if p.ready_at is not None]
        first = min(timers, key=lambda p: p.ready_at or datetime.max) if timers else pauses[0]

        def commit_all() -> None:
            for pause in pauses:
                if pause.step is not None:
                    pause.step.save()
                if pause.then is not None:
                    pause.then()

        # The earliest time any pending step may settle; events and finished children wake
        # the run sooner, and a wake before everything settled simply pauses again.
        super().pause(first.ready_at if timers else None, first.wait_kind, then=commit_all)

    def pending(self) -> list[StepRun]:
        return [m for m in self.memos.values() if m.status not in SETTLED]


def perform_gathered(inv: RemoteInvocation, op: StepOp) -> Any:
    """``step_kinds.perform`` while gathering: None if the executor paused (gathered)."""
    try:
        return step_kinds.perform(inv, op)
    except Gathered:
        return None


def settle_pending(inv: RemoteInvocation, now: datetime) -> list[StepRun]:
    """Settle what can be settled now: sleeps that are due, waits and invokes that resolved
    or timed out, each by its own executor. Gathers a pause for what must still wait
    (``begin_gathering`` first), and returns the due retries (the caller calls the app)."""
    due_retries: list[StepRun] = []
    for memo in sorted(inv.pending(), key=lambda m: m.position):
        op = op_for(memo)
        if op is not None:
            # StepError: an invoke whose child failed or timed out, now a Failed memo.
            with contextlib.suppress(StepError):
                perform_gathered(inv, op)
        elif memo.wake_at is not None and memo.wake_at > now:
            inv.gather_pause(memo.wake_at, WaitKind.RETRY)
        else:
            due_retries.append(memo)  # Retrying and due, or left Running by a dead worker
    return due_retries


def op_for(memo: StepRun) -> StepOp | None:
    """The op whose executor settles this unsettled memo; None for a step the app runs."""
    name = memo.display_name or memo.step_id
    if memo.kind == StepKind.SLEEP:
        return SleepOp(memo.step_id, name, memo.wake_at or memo.started_at)
    if memo.kind == StepKind.WAIT:
        return WaitOp(memo.step_id, name, "", None, timedelta(0))
    if memo.kind == StepKind.INVOKE:
        return InvokeOp(memo.step_id, name, name, {}, None)
    return None


# -- the memos the SDK reads -------------------------------------------------------------------


def memo_of(step: StepRun) -> wire.JSON:
    """One settled step as the SDK's memo (``sdk.wire``)."""
    if step.status == StepStatus.FAILED:
        error = SdkError.from_json(step.error or {})
        if step.kind == StepKind.INVOKE and error.name == INVOKE_TIMEOUT:
            return wire.memo_invoke_timed_out()
        return error.to_memo()
    if step.kind == StepKind.SLEEP:
        return wire.memo_sleep_woken()
    if step.kind == StepKind.WAIT:
        return (
            wire.memo_wait_timed_out()
            if step.output is None
            else wire.memo_wait_matched(step.output)
        )
    return wire.memo_data(step.output)


def memo_map(steps: Iterable[StepRun]) -> dict[str, wire.JSON]:
    """The ``steps`` of a call request: settled memos by hashed ID, in the order they ran."""
    settled = sorted((s for s in steps if s.status in SETTLED), key=lambda s: s.position)
    return {step.step_id: memo_of(step) for step in settled}
