"""What each op of an SDK app's answer does, mapped onto the engine's own step machinery.

| op | here |
|---|---|
| ``StepRun`` | the step's result: memoized, committed under the lease (a cancel drops it) |
| ``StepError`` | one failed attempt: Retrying with backoff (``retries``), or Failed when none are left or the app said ``X-Inngest-No-Retry`` |
| ``StepFailed`` | the last attempt failed: memoized as the error the SDK raises in user code |
| ``StepPlanned`` | a parallel branch's step: one targeted call each, concurrently, results committed together |
| ``Sleep`` / ``WaitForEvent`` / ``InvokeFunction`` | ``step_kinds``' executors, exactly as for in-process functions |
| anything else | the run fails, naming the op |

A targeted call counts its own attempts (the step's row); a function-level error there means
what it means to Inngest: ``NonRetriableError`` fails the run, ``RetryAfterError`` retries the
step no earlier than asked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from django.utils import timezone

from django_inngest import database
from django_inngest.conf import settings
from django_inngest.engine import retries
from django_inngest.engine.control import InvokeOp, SleepOp, WaitOp, check_output
from django_inngest.engine.leases import lease_keeper
from django_inngest.engine.parallel import steps_at_once
from django_inngest.engine.remote_calls import (
    Answer,
    describe_failure,
    error_of,
    named,
    prepare,
    send,
)
from django_inngest.engine.remote_state import RemoteInvocation, perform_gathered
from django_inngest.exceptions import ConfigurationError, StepError, StepOutputError
from django_inngest.models import StepKind, StepRun, StepStatus, WaitKind
from django_inngest.sdk import responses
from django_inngest.sdk.responses import Op

logger = logging.getLogger(__name__)


class RunFailed(Exception):
    """The run fails now, with this error (our ``error_dict`` shape)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


def apply(inv: RemoteInvocation, answer: Answer, attempt: int) -> bool:
    """Act on every op of a 206 to an untargeted call (made with ``attempt``). False if the
    answer held nothing new (only steps already memoized): the caller must not loop on it."""
    reported = answer.outcome
    assert isinstance(reported, responses.StepsReported)
    planned: list[StepRun] = []
    progressed = False
    inv.begin_gathering()
    for op in reported.ops:
        if isinstance(op, responses.Sleep | responses.WaitForEvent | responses.InvokeFunction):
            _block(inv, op)
            progressed = True
            continue
        if not isinstance(op, _STEP_OPS):
            _block(inv, op)  # an op we do not run: fails the run
        step = _row(inv, op.id, op.display_name)
        if step.status in (StepStatus.COMPLETED, StepStatus.FAILED):
            continue  # already memoized (an answer repeated after a lost commit)
        progressed = True
        if isinstance(op, responses.StepPlanned):
            planned.append(step)
            continue
        failure = _record(inv, step, op, answer, attempt, no_retry=reported.no_retry)
        inv.commit(step)  # a cancel committed meanwhile wins: the result is dropped
        inv.progressed = True
        if failure is not None:
            raise RunFailed(failure)
    if planned:
        run_targeted(inv, planned)
    for memo in inv.pending():
        if memo.status == StepStatus.RETRYING and memo.wake_at is not None:
            inv.gather_pause(memo.wake_at, WaitKind.RETRY)  # with the answer's pauses
    inv.pause_gathered()
    return progressed


_STEP_OPS = (responses.StepRun, responses.StepError, responses.StepFailed, responses.StepPlanned)


def _block(inv: RemoteInvocation, op: Op) -> None:
    """Sleep, wait or invoke: the executor creates the step (and its listener or child run)
    and pauses, gathered with the answer's other pauses."""
    try:
        if isinstance(op, responses.Sleep):
            perform_gathered(inv, SleepOp(op.id, op.display_name, op.until))
        elif isinstance(op, responses.WaitForEvent):
            op_wait = WaitOp(op.id, op.display_name, op.event, op.if_exp, op.timeout)
            perform_gathered(inv, op_wait)
        elif isinstance(op, responses.InvokeFunction):
            _invoke(inv, op)
        else:
            name = getattr(op, "op", type(op).__name__)
            raise RunFailed(
                named(
                    "UnsupportedOpcodeError",
                    f"step {op.display_name!r} is a {name} op, which this server does not run",
                )
            )
    except StepError as error:  # the same step ID was another kind of step before
        raise RunFailed(named(error.name, error.message)) from error


def _invoke(inv: RemoteInvocation, op: responses.InvokeFunction) -> None:
    data = dict(op.data or {})
    try:
        perform_gathered(inv, InvokeOp(op.id, op.display_name, op.function_id, data, op.timeout))
    except ConfigurationError:
        # As Inngest: the step fails (the SDK raises it in user code), the run goes on.
        step = inv.new_step(op.id, op.display_name, StepKind.INVOKE, StepStatus.FAILED)
        step.attempts, step.ended_at = 1, timezone.now()
        step.error = named("FunctionNotFoundError", f"no function {op.function_id!r} to invoke")
        inv.commit(step)
        inv.progressed = True


# -- steps the app executes ---------------------------------------------------------------------


def run_targeted(inv: RemoteInvocation, steps: Sequence[StepRun]) -> None:
    """One targeted call per step, concurrently; every result is committed in one transaction
    under the run's lock, so a cancel meanwhile drops them all."""
    prepared = [prepare(inv, target=step.step_id, attempt=step.attempts) for step in steps]
    with lease_keeper.watch(inv.run.run_id, inv.owner):
        if len(prepared) == 1:
            answers = [send(prepared[0])]
        else:
            threads = min(len(prepared), steps_at_once(inv))
            with ThreadPoolExecutor(threads, thread_name_prefix="inngest-sdk-call") as pool:
                answers = list(pool.map(send, prepared))
    failures: list[dict[str, Any]] = []
    with database.atomic():
        inv.lock()
        for step, call, answer in zip(steps, prepared, answers, strict=True):
            op = _op_for(answer, step.step_id)
            failure = _record(
                inv, step, op or answer, answer, call.attempt, no_retry=_no_retry(answer)
            )
            if failure is not None:
                failures.append(failure)
            step.save()
    inv.progressed = True
    if failures:
        raise RunFailed(failures[0])


def _op_for(answer: Answer, step_id: str) -> Op | None:
    if isinstance(answer.outcome, responses.StepsReported):
        for op in answer.outcome.ops:
            if op.id == step_id:
                return op
    return None


def _no_retry(answer: Answer) -> bool:
    return isinstance(answer.outcome, responses.StepsReported) and answer.outcome.no_retry


def _row(inv: RemoteInvocation, step_id: str, name: str) -> StepRun:
    existing = inv.memos.get(step_id)
    if existing is not None and existing.kind == StepKind.RUN:
        return existing
    if existing is not None:
        raise RunFailed(
            named(
                "NonDeterministicError",
                f"step {name!r} was a {existing.kind} step in an earlier call, now step.run",
            )
        )
    return inv.new_step(step_id, name, StepKind.RUN, StepStatus.RUNNING)


def _record(
    inv: RemoteInvocation,
    step: StepRun,
    result: Op | Answer,
    answer: Answer,
    attempt: int,
    *,
    no_retry: bool,
) -> dict[str, Any] | None:
    """Write one attempt's result into the step's row (the caller saves it). Returns an error
    when the whole run must fail (a function-level no-retry error during a targeted call)."""
    step.attempts = attempt + 1
    step.attempt_log = [
        *step.attempt_log,
        {
            "attempt": step.attempts,
            "started_at": answer.started_at.isoformat(),
            "ended_at": answer.ended_at.isoformat(),
        },
    ]
    if isinstance(result, responses.StepRun):
        try:
            output = check_output(result.data, settings.MAX_STEP_OUTPUT_BYTES)
        except StepOutputError as error:
            _settle(inv, step, named("StepOutputError", str(error)), retriable=False)
            return None
        step.status, step.output, step.error = StepStatus.COMPLETED, output, None
        step.ended_at, step.wake_at = answer.ended_at, None
        return None
    if isinstance(result, responses.StepFailed):
        _settle(inv, step, error_of(result.error), retriable=False)
    elif isinstance(result, responses.StepError):
        _settle(inv, step, error_of(result.error), retriable=not no_retry)
    else:
        # No result for this step: the call failed as a whole.
        outcome = answer.outcome
        failure, retriable, retry_at = describe_failure(outcome)
        if isinstance(outcome, responses.StepsReported | responses.Completed):
            failure = named("SdkTargetNotRunError", "the app answered without running this step")
        if isinstance(outcome, responses.FunctionError) and not retriable:
            _settle(inv, step, failure, retriable=False)
            return failure  # NonRetriableError in the step: the run fails, as on Inngest
        _settle(inv, step, failure, retriable=retriable, retry_at=retry_at)
    return None


def _settle(
    inv: RemoteInvocation,
    step: StepRun,
    error: dict[str, Any],
    *,
    retriable: bool,
    retry_at: datetime | None = None,
) -> None:
    """Retrying (with its wake time) or Failed, by the engine's one retry decision."""
    now = timezone.now()
    step.error = error
    step.attempt_log[-1]["error"] = error
    delay = max(0.0, (retry_at - now).total_seconds()) if retry_at else None
    wake_at = retries.next_attempt_at(
        retries.Failure(retriable=retriable, retry_after=delay),
        step.attempts,
        inv.function.retry_limit,
        now,
    )
    if wake_at is not None:
        step.status, step.wake_at = StepStatus.RETRYING, wake_at
        logger.warning(
            "Step failed, will retry run_id=%s step=%s attempt=%s error=%s",
            inv.run.run_id,
            step.display_name or step.step_id,
            step.attempts,
            error.get("message"),
        )
        return
    step.status, step.wake_at, step.ended_at = StepStatus.FAILED, None, now
