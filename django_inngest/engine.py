"""Advancing a run: claim it, replay the handler over its memoized steps, and record how the
handler ended (completed, failed, or retried as Inngest retries a function's final "step").

No django-q2 here: ``executor`` calls ``advance(run_id)`` from a worker task.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_inngest.completions import Completions
from django_inngest.conf import settings
from django_inngest.context import Context, FunctionLogger
from django_inngest.definitions import Event as EventValue
from django_inngest.exceptions import NonRetriableError, RetryAfterError, StepError
from django_inngest.invocation import WORKER_LOST, Invocation, backoff_seconds
from django_inngest.leases import Claim, claim_again, claim_new, lease_keeper, release
from django_inngest.lifecycle import error_dict, finish_run
from django_inngest.models import FunctionRun, RunStatus, StepKind, StepStatus, WaitKind
from django_inngest.registry import registry
from django_inngest.steps import Abandon, Group, Step, Suspend, check_output
from django_inngest.worker_pool import run_each, threads_for

logger = logging.getLogger(__name__)


def advance(run_id: str) -> str:
    """Advance a run as far as it can go now. Returns what happened, for logs and tests."""
    return advance_many([run_id])[run_id]


def advance_many(run_ids: Sequence[str]) -> dict[str, str]:
    """Advance several runs in this worker; returns each one's outcome.

    The runs never claimed before are claimed together up front (the usual case: a batch of
    events started them), and their leases kept while they wait their turn. Up to
    ``THREADS_PER_WORKER`` runs advance at once (see ``worker_pool``). Completed runs are ended
    in batches (see ``completions``). One run's unexpected error does not stop the others.

    A task starts no new run once it has used ``INVOCATION_BUDGET_SECONDS`` (but always starts
    one): the runs not started are handed back (``deferred``) and dispatched again, so that a
    batch of long runs never outlives django-q2's task ``timeout``.
    """
    owner = uuid.uuid4().hex
    ids = list(dict.fromkeys(run_ids))
    deadline = time.monotonic() + float(settings.INVOCATION_BUDGET_SECONDS)
    outcomes: dict[str, str] = {}
    completions = Completions(late_flush=len(ids) > 1)
    new = claim_new(ids, owner)

    any_started = threading.Event()

    def advance_one(run_id: str) -> None:
        # Past the budget, start nothing new; but every task starts at least one run.
        if time.monotonic() > deadline and any_started.is_set():
            outcomes[run_id] = "deferred"
            return
        any_started.set()
        try:
            claimed = new.get(run_id) or claim_again(run_id, owner)
            outcomes[run_id] = (
                "skipped" if claimed is None else _advance(claimed, owner, completions)
            )
        except Exception:
            logger.exception("Unexpected error advancing run_id=%s; it will be retried", run_id)
            outcomes[run_id] = "error"
        if completions.due():
            completions.flush()

    with ExitStack() as held:
        for run_id in new:
            held.enter_context(lease_keeper.watch(run_id, owner))
        try:
            threads = threads_for(len(ids))
            if threads == 1:
                for run_id in ids:
                    advance_one(run_id)
            else:
                run_each(ids, advance_one, threads)
        finally:
            completions.close()
            deferred = [run_id for run_id, outcome in outcomes.items() if outcome == "deferred"]
            if deferred:
                release(deferred, owner)
    outcomes.update(completions.outcomes)
    return outcomes


def _advance(claimed: Claim, owner: str, completions: Completions) -> str:
    run, recovered, first = claimed
    run_id = run.run_id
    function = registry.get(run.function_id)
    if function is None:
        missing = {
            "name": "FunctionNotFoundError",
            "message": f"function {run.function_id!r} is not defined in this worker",
        }
        return _fail_locked(run_id, owner, missing)
    invocation = Invocation(run, function, owner, first=first)
    if recovered and not any(m.status == StepStatus.RUNNING for m in invocation.memos.values()):
        # The worker died outside any step: count it against the run so a crash loop ends.
        run.attempt += 1
        FunctionRun.objects.filter(pk=run_id).update(attempt=run.attempt)
        if run.attempt > function.retry_limit:
            return _fail_locked(run_id, owner, dict(WORKER_LOST))
    return _run_handler(invocation, completions)


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


def _run_handler(inv: Invocation, completions: Completions) -> str:
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
    # Written with the worker's next completions; the flush may still find it cancelled.
    completions.add(inv.run, inv.owner, output, has_listeners=_may_have_listeners(inv))
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


def _fail_locked(run_id: str, owner: str, error: dict[str, Any]) -> str:
    """Fail a run we claimed, unless a cancel (or a takeover) got there first."""
    with transaction.atomic():
        run = FunctionRun.objects.select_for_update().select_related("event").get(pk=run_id)
        if run.status != RunStatus.RUNNING or run.lease_owner != owner:
            return "abandoned"
        finish_run(run, RunStatus.FAILED, timezone.now(), error=error)
    return "failed"
