"""Advancing a run: claim it, replay the handler over its memoized steps, and record how the
handler ended (completed, failed, or retried as Inngest retries a function's final "step").

No django-q2 here: ``executor`` calls ``advance(run_id)`` from a worker task.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_inngest.conf import settings
from django_inngest.context import Context, FunctionLogger
from django_inngest.definitions import Event as EventValue
from django_inngest.exceptions import NonRetriableError, RetryAfterError, StepError
from django_inngest.invocation import WORKER_LOST, Invocation, backoff_seconds
from django_inngest.leases import claim
from django_inngest.lifecycle import error_dict, finish_run
from django_inngest.models import FunctionRun, RunStatus, StepKind, StepStatus, WaitKind
from django_inngest.registry import registry
from django_inngest.steps import Abandon, Group, Step, Suspend, check_output

logger = logging.getLogger(__name__)


def advance(run_id: str) -> str:
    """Advance a run as far as it can go now. Returns what happened, for logs and tests."""
    owner = uuid.uuid4().hex
    claimed = claim(run_id, owner)
    if claimed is None:
        return "skipped"
    run, recovered, first = claimed
    function = registry.get(run.function_id)
    if function is None:
        _fail_locked(
            run_id,
            owner,
            {
                "name": "FunctionNotFoundError",
                "message": f"function {run.function_id!r} is not defined in this worker",
            },
        )
        return "failed"
    invocation = Invocation(run, function, owner, recovered, first)
    if recovered and not any(m.status == StepStatus.RUNNING for m in invocation.memos.values()):
        # The worker died outside any step: count it against the run so a crash loop ends.
        run.attempt += 1
        FunctionRun.objects.filter(pk=run_id).update(attempt=run.attempt)
        if run.attempt > function.retry_limit:
            _fail_locked(run_id, owner, dict(WORKER_LOST))
            return "failed"
    return _run_handler(invocation)


def _context(inv: Invocation) -> Context:
    event = EventValue(
        **{k: v for k, v in inv.trigger.items() if k in ("name", "data", "id", "ts", "user", "v")}
    )
    base = logging.getLogger(f"django_inngest.functions.{inv.function.id}")
    fn_logger = FunctionLogger(
        base, {"run_id": inv.run.run_id, "function_id": inv.function.id}, lambda: inv.replaying
    )
    step = Step(inv)
    return Context(
        attempt=inv.run.attempt,
        event=event,
        events=[event],
        group=Group(inv, step),
        logger=fn_logger,
        run_id=inv.run.run_id,
        step=step,
        function_id=inv.function.id,
        _is_cancelled=inv.is_cancelled,
    )


def _run_handler(inv: Invocation) -> str:
    try:
        output = inv.function.handler(_context(inv))
    except Suspend:
        return "paused"
    except Abandon:
        return "abandoned"
    except Exception as exc:
        return _handler_failed(inv, exc)
    try:
        output = check_output(output, int(settings.MAX_STEP_OUTPUT_BYTES))
    except Exception as exc:
        return _handler_failed(inv, exc)
    try:
        with transaction.atomic():
            run = inv.locked_run()
            finish_run(
                run,
                RunStatus.COMPLETED,
                timezone.now(),
                output=output,
                has_listeners=_may_have_listeners(inv),
            )
    except Abandon:
        return "abandoned"
    return "completed"


def _may_have_listeners(inv: Invocation) -> bool:
    # Listeners come from cancel rules and waits only; skipping the DELETE saves a query a run.
    return bool(inv.function.cancel) or any(m.kind == StepKind.WAIT for m in inv.memos.values())


def _handler_failed(inv: Invocation, exc: Exception) -> str:
    """An error outside any step: retry the handler unless it is final (Inngest's last 'step')."""
    final = isinstance(exc, NonRetriableError | StepError)
    try:
        if not final and inv.run.attempt < inv.function.retry_limit:
            attempt = inv.run.attempt + 1
            delay = (
                exc.delay_seconds(timezone.now())
                if isinstance(exc, RetryAfterError)
                else backoff_seconds(attempt)
            )
            logger.warning(
                "Run failed, will retry run_id=%s attempt=%s error=%s", inv.run.run_id, attempt, exc
            )

            def bump(run: FunctionRun) -> None:
                FunctionRun.objects.filter(pk=run.pk).update(attempt=attempt)

            inv.pause(timezone.now() + timedelta(seconds=delay), WaitKind.RETRY, extra=bump)
        with transaction.atomic():
            run = inv.locked_run()
            finish_run(run, RunStatus.FAILED, timezone.now(), error=error_dict(exc))
    except Suspend:
        return "paused"
    except Abandon:
        return "abandoned"
    return "failed"


def _fail_locked(run_id: str, owner: str, error: dict[str, Any]) -> None:
    with transaction.atomic():
        run = FunctionRun.objects.select_for_update().select_related("event").get(pk=run_id)
        if run.status == RunStatus.RUNNING and run.lease_owner == owner:
            finish_run(run, RunStatus.FAILED, timezone.now(), error=error)
