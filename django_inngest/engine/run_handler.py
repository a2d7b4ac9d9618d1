"""One claimed run's turn: replay its handler over its memoized steps, and record how the
handler ended (returned, failed, or retried as Inngest retries a function's final "step").
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from django_inngest import database
from django_inngest.conf import settings
from django_inngest.definitions import EventValue
from django_inngest.engine import retries
from django_inngest.engine.completions import Completions
from django_inngest.engine.context import Context, FunctionLogger
from django_inngest.engine.control import WORKER_LOST, Abandon, Suspend, check_output, error_dict
from django_inngest.engine.invocation import Invocation
from django_inngest.engine.lifecycle import finish_run
from django_inngest.engine.steps import Group, Step
from django_inngest.models import Claim, FunctionRun, RunStatus, StepKind, StepStatus, WaitKind
from django_inngest.registry import registry

logger = logging.getLogger(__name__)


def take_turn(claimed: Claim, owner: str, completions: Completions) -> str:
    """Advance one claimed run as far as it can go now; returns the outcome, for logs and tests:
    ``completed`` (its end is written with ``completions``), ``paused``, ``failed`` or
    ``abandoned`` (cancelled or taken over meanwhile)."""
    run, recovered, first = claimed
    function = registry.get(run.function_id)
    if function is None:
        missing = {
            "name": "FunctionNotFoundError",
            "message": f"function {run.function_id!r} is not defined in this worker",
        }
        return _fail(run.run_id, owner, missing)
    inv = Invocation(run, function, owner, first=first)
    if recovered and not any(m.status == StepStatus.RUNNING for m in inv.memos.values()):
        # The worker died outside any step: count it against the run so a crash loop ends.
        run.attempt += 1
        FunctionRun.objects.charge_attempt(run.run_id, owner, run.attempt)
        limit = function.retry_limit
        if not retries.next_attempt_at(retries.WORKER_DIED, run.attempt, limit, timezone.now()):
            return _fail(run.run_id, owner, dict(WORKER_LOST))
    return _call_handler(inv, completions)


def _event_value(payload: dict[str, Any]) -> EventValue:
    return EventValue(
        **{k: v for k, v in payload.items() if k in ("name", "data", "id", "ts", "user", "v")}
    )


def context_for(inv: Invocation) -> Context:
    events = [_event_value(p) for p in inv.run.trigger_payloads()]
    event = events[0]
    base = logging.getLogger(f"django_inngest.functions.{inv.function.id}")
    fn_logger = FunctionLogger(
        base, {"run_id": inv.run.run_id, "function_id": inv.function.id}, lambda: inv.replaying
    )
    step = Step(inv)
    return Context(
        attempt=inv.run.attempt,
        event=event,
        events=events,
        group=Group(inv),
        logger=fn_logger,
        run_id=inv.run.run_id,
        step=step,
        function_id=inv.function.id,
        _is_cancelled=inv.is_cancelled,
    )


def _call_handler(inv: Invocation, completions: Completions) -> str:
    try:
        output = check_output(
            inv.function.handler(context_for(inv)), settings.MAX_STEP_OUTPUT_BYTES
        )
    except Suspend:
        return "paused"
    except Abandon:
        return "abandoned"
    except Exception as exc:
        return _handler_failed(inv, exc)
    # Written with the worker's next completions; the flush may still find it cancelled.
    completions.add(inv.run, inv.owner, output, has_listeners=_may_have_listeners(inv))
    return "completed"


def _may_have_listeners(inv: Invocation) -> bool:
    # Listeners come from cancel rules and waits only; skipping the DELETE saves a query a run.
    return bool(inv.function.cancel) or any(m.kind == StepKind.WAIT for m in inv.memos.values())


def _handler_failed(inv: Invocation, exc: Exception) -> str:
    """An error outside any step: retried as Inngest retries the function's final "step"."""
    now = timezone.now()
    attempt = inv.run.attempt + 1
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
