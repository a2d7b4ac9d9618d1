"""One claimed run's turn: replay its handler over its memoized steps, and record how the
handler ended (returned, failed, or retried as Inngest retries a function's final "step").
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from django_inngest import database
from django_inngest.engine import remote, retries, unknown_functions
from django_inngest.engine.completions import Completions
from django_inngest.engine.control import WORKER_LOST, Abandon, Suspend, error_dict
from django_inngest.engine.handler_call import Turn
from django_inngest.engine.invocation import Invocation
from django_inngest.engine.lifecycle import finish_run
from django_inngest.models import Claim, FunctionRun, RunStatus, StepKind, StepStatus, WaitKind
from django_inngest.registry import registry
from django_inngest.sdk_apps.function import SdkFunction

logger = logging.getLogger(__name__)


def take_turn(claimed: Claim, owner: str, completions: Completions) -> str:
    """Advance one claimed run as far as it can go now; returns the outcome, for logs and tests:
    ``completed`` (its end is written with ``completions``), ``paused``, ``failed``,
    ``awaiting function`` (unknown here) or ``abandoned`` (cancelled or taken over)."""
    run, recovered, first = claimed
    function = registry.get(run.function_id)
    if function is None:  # a rolling deploy: a worker that has it takes it, or it fails later
        return unknown_functions.hand_back_or_fail(run, owner)
    unknown_functions.forget_missing(run, owner)
    if isinstance(function, SdkFunction):  # an SDK app runs it, over HTTP: engine/remote.py
        return remote.take_turn(claimed, function, owner, completions)
    inv = Invocation(run, function, owner, first=first)
    if recovered and not any(m.status == StepStatus.RUNNING for m in inv.memos.values()):
        # The worker died outside any step: count it against the run so a crash loop ends.
        run.attempt += 1
        FunctionRun.objects.charge_attempt(run.run_id, owner, run.attempt)
        limit = function.retry_limit
        if not retries.next_attempt_at(retries.WORKER_DIED, run.attempt, limit, timezone.now()):
            return _fail(run.run_id, owner, dict(WORKER_LOST))
    return _call_handler(inv, completions)


def _call_handler(inv: Invocation, completions: Completions) -> str:
    turn = Turn(inv)  # the handler's context, sync or async, and its middleware
    try:
        output = turn.call()
    except Suspend:
        return "paused"
    except Abandon:
        return "abandoned"
    except Exception as exc:
        return _handler_failed(inv, exc, turn.attempt + 1)
    # Written with the worker's next completions; the flush may still find it cancelled.
    completions.add(inv.run, inv.owner, output, has_listeners=_may_have_listeners(inv))
    return "completed"


def _may_have_listeners(inv: Invocation) -> bool:
    # Listeners come from cancel rules and waits only; skipping the DELETE saves a query a run.
    return bool(inv.function.cancel) or any(m.kind == StepKind.WAIT for m in inv.memos.values())


def _handler_failed(inv: Invocation, exc: Exception, attempt: int) -> str:
    """An error outside any step: retried as Inngest retries the function's final "step".
    ``attempt`` counts the failures since the run last made progress, this one included."""
    now = timezone.now()
    retry_at = retries.next_attempt_at(
        retries.Failure.of(exc, now), attempt, inv.function.retry_limit, now
    )
    try:
        if retry_at is not None:
            logger.warning(
                "Run failed, will retry run_id=%s attempt=%s error=%s", inv.run.run_id, attempt, exc
            )
            inv.pause(retry_at, WaitKind.RETRY, attempt=attempt)
        with database.atomic():
            inv.lock()
            finish_run(inv.run, RunStatus.FAILED, now, error=error_dict(exc))
    except Suspend:
        return "paused"
    except Abandon:
        return "abandoned"
    return "failed"


def _fail(run_id: str, owner: str, error: dict[str, Any]) -> str:
    """Fail a run we claimed, unless a cancel (or a takeover) got there first."""
    with database.atomic():
        run = FunctionRun.objects.locked(run_id)
        if run is None or run.status != RunStatus.RUNNING or run.lease_owner != owner:
            return "abandoned"
        finish_run(run, RunStatus.FAILED, timezone.now(), error=error)
    return "failed"
