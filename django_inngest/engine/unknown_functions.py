"""A run whose function this worker does not know: during a rolling deploy, old and new workers
run side by side, and a run of a new function may reach an old worker (or the reverse).

The worker hands the run back with a delay, for a worker that has the function, and logs a
WARNING. The delay grows with how long the function has been missing (1 s, 2 s, 4 s, ... up to
``MAX_DELAY_SECONDS``), so a deploy that finishes quickly costs little and a long one few log
lines. Only once no worker has known it for ``FUNCTION_NOT_FOUND_GRACE_SECONDS`` does the run
fail, with ``FunctionNotFoundError``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from django_inngest import database
from django_inngest.conf import settings
from django_inngest.engine import gates
from django_inngest.engine.lifecycle import finish_run
from django_inngest.models import FunctionRun, RunStatus

logger = logging.getLogger(__name__)
#: The first hand-back waits this long; each later one as long as the function has been missing.
MIN_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0


def hand_back_or_fail(run: FunctionRun, owner: str) -> str:
    """The worker holding ``run`` does not know its function: hand it back (``"awaiting function"``) or,
    past the grace period, fail it (``"failed"``); ``"abandoned"`` if cancelled meanwhile."""
    now = timezone.now()
    grace = timedelta(seconds=settings.FUNCTION_NOT_FOUND_GRACE_SECONDS)
    since = run.function_missing_since or now
    missing_for = now - since
    if missing_for >= grace:
        return _fail(run, owner, missing_for)
    delay = min(
        max(missing_for.total_seconds(), MIN_DELAY_SECONDS),
        MAX_DELAY_SECONDS,
        (grace - missing_for).total_seconds(),
    )
    retry_at = now + timedelta(seconds=delay)
    with database.atomic():
        if not FunctionRun.objects.await_function(run.run_id, owner, now=now, retry_at=retry_at):
            return "abandoned"
        if run.gated:
            gates.release([run])  # a run handed back holds no concurrency slot
    logger.warning(
        "Function %s is not defined in this worker (a deploy in progress?): run_id=%s handed "
        "back, retried in %.0f s; it fails if no worker knows the function by %s",
        run.function_id,
        run.run_id,
        delay,
        (since + grace).isoformat(timespec="seconds"),
    )
    return "awaiting function"


def forget_missing(run: FunctionRun, owner: str) -> None:
    """A worker that knows the function holds the run: a later deploy gets a fresh grace."""
    if run.function_missing_since is not None:
        FunctionRun.objects.function_found(run.run_id, owner)
        run.function_missing_since = None


def _fail(run: FunctionRun, owner: str, missing_for: timedelta) -> str:
    error = {
        "name": "FunctionNotFoundError",
        "message": f"function {run.function_id!r} is not defined in any worker that took the "
        f"run within DJANGO_INNGEST_FUNCTION_NOT_FOUND_GRACE_SECONDS "
        f"({settings.FUNCTION_NOT_FOUND_GRACE_SECONDS:g} s; missing for "
        f"{missing_for.total_seconds():.0f} s)",
    }
    with database.atomic():
        locked = FunctionRun.objects.locked(run.run_id)
        if locked is None or locked.status != RunStatus.RUNNING or locked.lease_owner != owner:
            return "abandoned"
        finish_run(locked, RunStatus.FAILED, timezone.now(), error=error)
    return "failed"
