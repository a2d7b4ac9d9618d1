"""The opcode interpreter: one worker's turn at a run of a function an SDK app serves.

Where an in-process run replays its handler, this calls the app (``remote_calls``) with the
run's memos and acts on the answer (``remote_ops``), through the same executors, memo rows,
commit protocol, retries and endings as every run:

1. settle the pending set (``remote_state.settle_pending``): due sleeps complete, waits and
   invokes resolved or timed out are memoized, due step retries are called again; if anything
   must still wait, pause until the earliest of it (``Suspend``);
2. call the app untargeted with every settled memo (``ctx.attempt`` counts this call's
   retries; it starts again from 0 once an answer made progress);
3. 200: the run completed (ended with the worker's other completions). 206: act on its ops,
   then go back to 1 (each planned step gets its own call, and the follow-up call is made once,
   after all of them). An error or no answer: retry the call with backoff (``Retry-After``
   honoured; ``X-Inngest-No-Retry`` fails at once), or fail the run when retries are spent.

A run is held by one worker's lease at a time, so "exactly one follow-up call" holds under
django-q2's at-least-once tasks: a duplicate task finds the lease taken, and a worker that dies
mid-call leaves a run that the next one resumes from its committed memos (the app runs the
step whose answer was lost again; its result is memoized once).
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from django_inngest import database
from django_inngest.conf import settings
from django_inngest.engine import retries
from django_inngest.engine.completions import Completions
from django_inngest.engine.control import WORKER_LOST, Abandon, Suspend, check_output
from django_inngest.engine.lifecycle import finish_run
from django_inngest.engine.remote_calls import Outcome, describe_failure, named, prepare, send
from django_inngest.engine.remote_ops import RunFailed, apply, run_targeted
from django_inngest.engine.remote_state import RemoteInvocation, settle_pending
from django_inngest.exceptions import StepOutputError
from django_inngest.models import Claim, FunctionRun, RunStatus, StepKind, WaitKind
from django_inngest.sdk import responses
from django_inngest.sdk_apps.function import SdkFunction

logger = logging.getLogger(__name__)


def take_turn(claimed: Claim, function: SdkFunction, owner: str, completions: Completions) -> str:
    """Advance one claimed run as far as it can go now; the outcome as ``run_handler``'s:
    ``completed``, ``paused``, ``failed`` or ``abandoned``."""
    run, recovered, first = claimed
    inv = RemoteInvocation(run, function, owner, first=first)
    try:
        if recovered:
            _charge_lost_worker(inv)
        return _advance(inv, completions)
    except Suspend:
        return "paused"
    except Abandon:
        return "abandoned"
    except RunFailed as failed:
        return _fail(inv, failed.error)


def _advance(inv: RemoteInvocation, completions: Completions) -> str:
    while True:
        inv.begin_gathering()
        due = settle_pending(inv, timezone.now())
        if due:
            inv.before_step()
            run_targeted(inv, due)
            continue  # look at the pending set again: a retry may have failed again
        inv.pause_gathered()  # Suspend while anything is pending (Inngest's "wait" mode)
        inv.before_step()  # a bulk cancellation; or yield the worker once over budget
        attempt = inv.run.attempt
        answer = send(prepare(inv, target=None, attempt=attempt))
        outcome = answer.outcome
        if isinstance(outcome, responses.Completed):
            return _complete(inv, outcome.output, completions)
        if isinstance(outcome, responses.StepsReported) and outcome.ops:
            _reset_attempt(inv)
            if apply(inv, answer, attempt):
                continue
            # Only steps we had sent as memoized: calling again would answer the same.
            outcome = responses.InvalidResponse(206, "it reported only steps already memoized")
        _call_failed(inv, outcome, attempt)


def _complete(inv: RemoteInvocation, output: Any, completions: Completions) -> str:
    try:
        output = check_output(output, settings.MAX_STEP_OUTPUT_BYTES)
    except StepOutputError as error:
        raise RunFailed(named("StepOutputError", str(error))) from error
    has_listeners = bool(inv.function.cancel) or any(
        m.kind == StepKind.WAIT for m in inv.memos.values()
    )
    # Ended with the worker's next completions; a cancel before that still wins.
    completions.add(inv.run, inv.owner, output, has_listeners=has_listeners)
    return "completed"


def _call_failed(inv: RemoteInvocation, outcome: Outcome, call_attempt: int) -> None:
    """An untargeted call (made as ``call_attempt``) failed: retried as Inngest retries the
    function's "step", or the run fails (``RunFailed``)."""
    error, retriable, retry_at = describe_failure(outcome)
    now = timezone.now()
    attempt = call_attempt + 1
    delay = max(0.0, (retry_at - now).total_seconds()) if retry_at else None
    wake_at = retries.next_attempt_at(
        retries.Failure(retriable=retriable, retry_after=delay),
        attempt,
        inv.function.retry_limit,
        now,
    )
    if wake_at is not None:
        logger.warning(
            "Call to SDK app failed, will retry run_id=%s attempt=%s error=%s",
            inv.run.run_id,
            attempt,
            error.get("message"),
        )
        inv.pause(wake_at, WaitKind.RETRY, attempt=attempt)
    raise RunFailed(error)


def _reset_attempt(inv: RemoteInvocation) -> None:
    """The call made progress: the next one is a new request, whose attempts start at 0."""
    if inv.run.attempt:
        inv.run.attempt = 0
        FunctionRun.objects.charge_attempt(inv.run.run_id, inv.owner, 0)


def _charge_lost_worker(inv: RemoteInvocation) -> None:
    """The previous worker died holding the run (mid-call, most likely): that call counts as
    a failed attempt, so a run that always kills its worker ends."""
    inv.run.attempt += 1
    FunctionRun.objects.charge_attempt(inv.run.run_id, inv.owner, inv.run.attempt)
    limit = inv.function.retry_limit
    if not retries.next_attempt_at(retries.WORKER_DIED, inv.run.attempt, limit, timezone.now()):
        raise RunFailed(dict(WORKER_LOST))


def _fail(inv: RemoteInvocation, error: dict[str, Any]) -> str:
    try:
        with database.atomic():
            inv.lock()
            finish_run(inv.run, RunStatus.FAILED, timezone.now(), error=error)
    except Abandon:
        return "abandoned"
    return "failed"
