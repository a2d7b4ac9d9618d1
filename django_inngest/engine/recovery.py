"""Runs whose worker died go first: the next task a worker starts takes them.

When a worker dies its runs keep their leases until these expire. The poller then dispatches
them like any due run, to the back of the broker's queue: behind a backlog, a recovered run
would wait for every task queued before it. So each task a worker starts first looks (at most
once per ``CHECK_EVERY_SECONDS`` in a process) for runs whose lease has expired, and advances
them ahead of its own; they are claimed as always (``claim_again``), so a run found by several
workers, or dispatched by the poller as well, is advanced by one.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from django_inngest.conf import settings
from django_inngest.engine import shutdown
from django_inngest.models import FunctionRun, RunStatus

#: How often, at most, one worker process looks for runs whose lease expired.
CHECK_EVERY_SECONDS = 1.0

_lock = threading.Lock()
_enabled = False
_last_check = float("-inf")


def enable() -> None:
    """Look for orphaned runs in this process (django-q2 worker processes, not sync mode)."""
    global _enabled
    _enabled = True


def orphaned(now: datetime) -> QuerySet[FunctionRun]:
    """Runs whose lease expired, oldest expiry first: their worker died or froze. Served by the
    ``inngest_run_leased`` index, however many runs are queued or paused."""
    return (
        FunctionRun.objects.filter(
            status=RunStatus.RUNNING, lease_expires_at__lt=now, ready_at__lte=now
        )
        .exclude(lease_owner="")
        .order_by("lease_expires_at")
    )


def orphans_first(run_ids: list[str]) -> list[str]:
    """``run_ids`` with the orphaned runs found now (if it is time to look) in front."""
    global _last_check
    if not _enabled or shutdown.stopping():
        return run_ids
    with _lock:
        if time.monotonic() - _last_check < CHECK_EVERY_SECONDS:
            return run_ids
        _last_check = time.monotonic()
    limit = settings.DISPATCH_BATCH_SIZE
    orphans = list(orphaned(timezone.now()).values_list("run_id", flat=True)[:limit])
    return list(dict.fromkeys([*orphans, *run_ids])) if orphans else run_ids
