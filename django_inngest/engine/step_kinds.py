"""Every kind of step, executed: run, sleep (and sleep_until), wait_for_event, send_event,
invoke, and the steps of a parallel group.

Each op goes through ``perform``: ``recall`` replays a memo that settled (Completed or Failed),
its value returned or its error raised, exactly once here for every kind, without touching the
database; otherwise ``execute`` runs the kind's executor, with one signature ``(inv, op, memo)
-> value``. ``step.run`` is split into ``begin_run``, the user's call and ``finish_run``, and a
parallel group's steps into ``start_planned``, the calls and ``commit_planned``, so that the
async step API (``steps_async``) awaits the user's calls in between.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

from django.utils import timezone

from django_inngest.conf import settings
from django_inngest.database import atomic as database_atomic
from django_inngest.engine import attempts, emit, retries
from django_inngest.engine.control import (
    WORKER_LOST,
    InvokeOp,
    Planned,
    PlanningInterrupt,
    Recalled,
    RunOp,
    SendOp,
    SleepOp,
    StepOp,
    WaitOp,
    check_output,
    error_dict,
)
from django_inngest.engine.invocation import Invocation
from django_inngest.engine.leases import lease_keeper
from django_inngest.exceptions import ConfigurationError, NonRetriableError, StepError
from django_inngest.function import INVOKED_EVENT
from django_inngest.models import Listener, ListenerKind, StepRun, StepStatus, WaitKind
from django_inngest.models.listeners import residual
from django_inngest.registry import registry

logger = logging.getLogger(__name__)
_SETTLED = (StepStatus.COMPLETED, StepStatus.FAILED)
Executor = Callable[[Invocation, Any, StepRun | None], Any]


def perform(inv: Invocation, op: StepOp) -> Any:
    """Replay the op's settled memo, or execute it (or, while parallel plans, collect it)."""
    found = recall(inv, op)
    if isinstance(found, Recalled):
        return found.value
    return execute(inv, op, found)


def recall(inv: Invocation, op: StepOp) -> Recalled | StepRun | None:
    """The part of ``perform`` that never touches the database (so an async handler calls it on
    its event loop): replay a settled memo (its value, or its error raised), or, while
    ``group.parallel`` plans, collect a new ``step.run`` and interrupt the branch. Otherwise
    returns the op's unsettled memo, or None, for ``execute``."""
    memo = inv.memo_for(op)
    if memo is not None and memo.status in _SETTLED:
        inv.consume_memo()
        if memo.status == StepStatus.FAILED:
            raise StepError.from_dict(memo.error or {}, op.uid)
        return Recalled(memo.output)
    if inv.planning is not None:
        # While group.parallel plans, a new step.run is gathered; any other new step ends the
        # branch's planning, and it runs (and pauses, if it must) in the final pass.
        if isinstance(op, RunOp):
            inv.planning.append(Planned(op, memo))
        raise PlanningInterrupt()
    return memo


def execute(inv: Invocation, op: StepOp, memo: StepRun | None) -> Any:
    """Run the op's executor. A result it returns, or a final failure it raises, is committed:
    the run made progress (``ctx.attempt`` starts again from 0; see ``engine.attempts``)."""
    executor: Executor = _EXECUTORS[type(op)]
    try:
        value = executor(inv, op, memo)
    except StepError:
        inv.progressed = True
        raise
    inv.progressed = True
    return value


# -- step.run -------------------------------------------------------------------------------------
def begin_run(inv: Invocation, op: RunOp, memo: StepRun | None) -> StepRun:
    """Everything before the user's call: settle an attempt a dead worker left, wait for a
    retry's time, stop if cancelled or over budget, and start the attempt."""
    inv.end_replay()
    now = timezone.now()
    if memo is not None and _worker_died_in(memo):
        # That attempt counts, so a step that always kills its worker ends Failed.
        _settle_or_raise(inv, memo, _charge_worker_lost(memo, now), retries.WORKER_DIED)
    if memo is not None and _retry_not_due(memo, now):
        inv.pause(memo.wake_at, WaitKind.RETRY)
    inv.before_step()
    return _start_attempt(memo or inv.new_step(op.uid, op.name, op.kind, StepStatus.RUNNING))


def finish_run(inv: Invocation, step: StepRun, ok: bool, outcome: Any) -> Any:
    """Everything after the user's call: commit the result, or settle the failure."""
    if not ok:
        assert isinstance(outcome, BaseException)
        _settle_or_raise(inv, step, _log_failed_attempt(step, outcome), _failure(outcome))
    _complete(step, outcome)
    inv.commit(step)  # a cancel that committed while the step ran wins: the result is dropped
    inv.progressed = True
    return outcome


def call_step(handler: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
    """Run a sync step's user code: (True, checked output) or (False, the exception)."""
    try:
        output = handler(*args)
        if inspect.isawaitable(output):
            _discard(output)
            raise NonRetriableError(
                "the step.run body returned an awaitable, but the function is sync: a sync "
                "handler's steps must return values; define the function with `async def` to "
                "await in its steps"
            )
        return True, check_output(output, settings.MAX_STEP_OUTPUT_BYTES)
    except Exception as exc:
        return False, exc


def _discard(awaitable: Any) -> None:
    if inspect.iscoroutine(awaitable):
        awaitable.close()  # never awaited: no "coroutine was never awaited" warning


def run_body(inv: Invocation, step: StepRun, op: RunOp) -> tuple[bool, Any]:
    """Call a sync ``step.run`` body between ``begin_run`` and ``finish_run``.

    The step row is written once, with its result. Only a step that outlives a third of the
    lease is first recorded as Running (by the keeper), so that a worker killed inside it is
    charged to that step; a short step's crash is charged to the run.
    """
    with (
        lease_keeper.watch(inv.run.run_id, inv.owner, on_long=step.save),
        attempts.within_step(inv.run.run_id, step.attempts - 1),
    ):
        return call_step(op.handler, op.args)


def _run(inv: Invocation, op: RunOp, memo: StepRun | None) -> Any:
    step = begin_run(inv, op, memo)
    ok, outcome = run_body(inv, step, op)
    return finish_run(inv, step, ok, outcome)


def _start_attempt(step: StepRun) -> StepRun:
    step.status = StepStatus.RUNNING
    step.attempts += 1
    step.wake_at = None
    step.attempt_log = [
        *step.attempt_log,
        {"attempt": step.attempts, "started_at": timezone.now().isoformat()},
    ]
    return step


def _complete(step: StepRun, output: Any) -> None:
    ended = timezone.now()
    step.status = StepStatus.COMPLETED
    step.output = output
    step.error = None
    step.ended_at = ended
    step.attempt_log[-1]["ended_at"] = ended.isoformat()


def _failure(exc: BaseException) -> retries.Failure:
    return retries.Failure.of(exc, timezone.now())


def _log_failed_attempt(step: StepRun, exc: BaseException) -> dict[str, Any]:
    error = error_dict(exc)
    step.attempt_log[-1].update({"ended_at": timezone.now().isoformat(), "error": error})
    return error


def _settle(
    inv: Invocation, step: StepRun, error: dict[str, Any], failure: retries.Failure
) -> datetime | None:
    """Mark the step Retrying (returns when) or Failed (returns None); the caller saves it."""
    now = timezone.now()
    step.error = error
    wake_at = retries.next_attempt_at(failure, step.attempts, inv.function.retry_limit, now)
    if wake_at is not None:
        step.status = StepStatus.RETRYING
        step.wake_at = wake_at
        logger.warning(
            "Step failed, will retry run_id=%s step=%s attempt=%s error=%s",
            inv.run.run_id,
            step.step_id,
            step.attempts,
            error.get("message"),
        )
        return wake_at
    step.status = StepStatus.FAILED
    step.ended_at = now
    return None


def _settle_or_raise(
    inv: Invocation, step: StepRun, error: dict[str, Any], failure: retries.Failure
) -> NoReturn:
    """Pause for a retry (Suspend), or record the final failure and raise StepError, which the
    handler may catch, as in Inngest."""
    wake_at = _settle(inv, step, error, failure)
    if wake_at is not None:
        inv.pause(wake_at, WaitKind.RETRY, step=step)
    inv.commit_locked(step)
    raise StepError.from_dict(error, step.step_id)


def _worker_died_in(memo: StepRun) -> bool:
    # A step recorded as Running whose run we now hold under a new lease: the previous worker
    # died inside it (only our own keeper records a long step as Running).
    return memo.status == StepStatus.RUNNING


def _retry_not_due(memo: StepRun, now: datetime) -> bool:
    return memo.status == StepStatus.RETRYING and memo.wake_at is not None and memo.wake_at > now


def _charge_worker_lost(memo: StepRun, now: datetime) -> dict[str, Any]:
    """Close the dead worker's attempt in the step's log; returns the error to settle with."""
    memo.attempt_log[-1].update({"ended_at": now.isoformat(), "error": dict(WORKER_LOST)})
    return dict(WORKER_LOST)


# -- group.parallel: its steps' two phases (the scheduling is engine.parallel) -----------------
def start_planned(
    inv: Invocation, planned: Sequence[Planned], *, may_yield: bool = True
) -> tuple[list[tuple[StepRun, RunOp]], dict[str, datetime]]:
    """Start the planned new steps of a parallel group, in one transaction: returns the attempts
    to run now (each step saved as Running) and the wake-up times of those that must wait (a
    retry not due yet, or an attempt a dead worker left, now settled). ``may_yield``: check the
    budget and bulk cancellations first (not while other steps of the group are in flight)."""
    now = timezone.now()
    wakes: dict[str, datetime] = {}
    attempts_now: list[tuple[StepRun, RunOp]] = []
    if may_yield and any(
        plan.memo is None or not (_worker_died_in(plan.memo) or _retry_not_due(plan.memo, now))
        for plan in planned
    ):
        # Yield or stop before any attempt is recorded as started: a branch saved as Running
        # and then left would later look like a worker that died inside it.
        inv.before_step()
    inv.end_replay()
    with database_atomic():
        inv.lock()
        for plan in planned:
            memo = plan.memo
            if memo is not None and _worker_died_in(memo):
                error = _charge_worker_lost(memo, now)
                wake = _settle(inv, memo, error, retries.WORKER_DIED)
                memo.save()
                wakes.update({memo.step_id: wake} if wake else {})
            elif memo is not None and _retry_not_due(memo, now):
                assert memo.wake_at is not None
                wakes[memo.step_id] = memo.wake_at
            else:
                op = plan.op
                step = memo or inv.new_step(op.uid, op.name, op.kind, StepStatus.RUNNING)
                attempts_now.append((_start_attempt(step), op))
                step.save()
    return attempts_now, wakes


def commit_planned(
    inv: Invocation, finished: Sequence[tuple[StepRun, bool, Any]]
) -> dict[str, datetime]:
    """Commit the results of parallel steps together (dropped whole if the run was cancelled
    meanwhile). Failed steps follow the same retry rules as sequential ones; returns the wake-up
    times of those that will be retried."""
    wakes: dict[str, datetime] = {}
    with database_atomic():
        inv.lock()
        for step, ok, outcome in finished:
            if ok:
                _complete(step, outcome)
            else:
                error = _log_failed_attempt(step, outcome)
                wake = _settle(inv, step, error, _failure(outcome))
                wakes.update({step.step_id: wake} if wake else {})
            step.save()
    inv.progressed = True
    return wakes


# -- step.sleep -----------------------------------------------------------------------------------
def _sleep(inv: Invocation, op: SleepOp, memo: StepRun | None) -> None:
    """Pause until ``op.until``; once due, the sleep's memo is completed (and replays)."""
    now = timezone.now()
    if memo is None:
        inv.end_replay()
        inv.before_step()
        memo = inv.new_step(op.uid, op.name, op.kind, StepStatus.SLEEPING, wake_at=op.until)
        if op.until > now:
            if not _sleep_here(inv, op.until, now):
                inv.pause(op.until, WaitKind.SLEEP, step=memo)
            now = timezone.now()
    else:
        inv.consume_memo()
        if memo.wake_at and memo.wake_at > now:
            inv.pause(memo.wake_at, WaitKind.SLEEP)  # woken early (a duplicate task)
    memo.status = StepStatus.COMPLETED
    memo.ended_at = now
    inv.commit_locked(memo)


def _sleep_here(inv: Invocation, until: datetime, now: datetime) -> bool:
    """Sleep in this worker if the sleep ends within one timer poll: pausing could not wake the
    run sooner (the poller looks for due runs once per ``TIMER_POLL_SECONDS``), and the worker
    is held no longer than that. Not past the turn's budget. Returns whether it slept."""
    remaining = (until - now).total_seconds()
    if remaining > settings.TIMER_POLL_SECONDS or time.monotonic() + remaining > inv.deadline:
        return False
    while (remaining := (until - timezone.now()).total_seconds()) > 0:
        time.sleep(remaining)
    return True


# -- step.wait_for_event --------------------------------------------------------------------------
def _wait(inv: Invocation, op: WaitOp, memo: StepRun | None) -> dict[str, Any] | None:
    """Pause until a matching event resolves the step (``wakeups.resume_wait``) or the timeout
    passes (then the memo is None)."""
    now = timezone.now()
    if memo is None:
        inv.end_replay()
        inv.before_step()
        timeout_at = now + op.timeout
        step = inv.new_step(op.uid, op.name, op.kind, StepStatus.WAITING, wake_at=timeout_at)
        expression = residual(op.if_exp, inv.trigger)

        def listen() -> None:
            if expression != "false":  # it can never match: the wait simply times out
                Listener.build(
                    ListenerKind.WAIT, inv.run, op.event, expression, timeout_at, now, op.uid
                ).save(force_insert=True)

        inv.pause(timeout_at, WaitKind.EVENT, step=step, then=listen)
    inv.consume_memo()
    with database_atomic():
        inv.lock()
        memo.refresh_from_db()
        inv.memos[op.uid] = memo
        if memo.status == StepStatus.COMPLETED:  # the event arrived as we were woken
            return memo.output
        if memo.wake_at is None or memo.wake_at <= now:
            Listener.objects.filter(run_id=inv.run.run_id, step_id=op.uid).delete()
            memo.status = StepStatus.COMPLETED
            memo.output = None
            memo.ended_at = now
            memo.save()
            return None
    inv.pause(memo.wake_at, WaitKind.EVENT)  # woken early (a duplicate task)


# -- step.send_event ------------------------------------------------------------------------------
def _send(inv: Invocation, op: SendOp, memo: StepRun | None) -> list[str]:
    """The events and the step's memo commit together: a replay never sends twice."""
    inv.end_replay()
    inv.before_step()
    step = inv.new_step(op.uid, op.name, op.kind, StepStatus.RUNNING)
    with database_atomic():
        inv.lock()
        ids = emit.send(list(op.payloads))
        step.status = StepStatus.COMPLETED
        step.attempts = 1
        step.output = ids
        step.ended_at = timezone.now()
        step.save()
    return ids


# -- step.invoke ----------------------------------------------------------------------------------
def _invoke(inv: Invocation, op: InvokeOp, memo: StepRun | None) -> Any:
    """Start the target run and pause until it ends (``wakeups.resolve_invoke`` memoizes its
    output or error) or the timeout passes."""
    now = timezone.now()
    if memo is None:
        target = registry.get(op.function_id)
        if target is None:
            raise ConfigurationError(f"invoke: no function {op.function_id!r} is registered")
        inv.end_replay()
        inv.before_step()
        wake_at = now + op.timeout if op.timeout else None
        step = inv.new_step(op.uid, op.name, op.kind, StepStatus.WAITING, wake_at=wake_at)
        payload: dict[str, Any] = {
            "name": INVOKED_EVENT,
            "data": {
                **op.data,
                "_inngest": {
                    "fn_id": target.id,
                    "source_fn_id": inv.function.id,
                    "source_run_id": inv.run.run_id,
                },
            },
        }

        if op.v is not None:
            payload["v"] = op.v  # the child's event.v (inngest-py's invoke(v=...))

        def start_child() -> None:
            step.save()
            emit.start_invoked_run(target, payload, inv.run, op.uid, now)

        inv.pause(wake_at, WaitKind.INVOKE, then=start_child)
    inv.consume_memo()
    memo.refresh_from_db()
    inv.memos[op.uid] = memo
    if memo.status == StepStatus.COMPLETED:
        return memo.output
    if memo.status == StepStatus.FAILED:
        raise StepError.from_dict(memo.error or {}, op.uid)
    if memo.wake_at and memo.wake_at <= now:
        error = {
            "name": "InvokeTimeoutError",
            "message": f"invoked function {op.function_id} timed out",
        }
        memo.status, memo.error, memo.ended_at = StepStatus.FAILED, error, now
        inv.commit_locked(memo)
        raise StepError.from_dict(error, op.uid)
    inv.pause(memo.wake_at, WaitKind.INVOKE)


_EXECUTORS: dict[type, Executor] = {
    RunOp: _run,
    SleepOp: _sleep,
    WaitOp: _wait,
    SendOp: _send,
    InvokeOp: _invoke,
}
