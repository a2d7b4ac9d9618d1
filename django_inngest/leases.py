"""The run row's lease: how a worker claims a run, keeps it during long steps, and how due or
abandoned runs are found again.

At most one worker advances a run. A claim is ``select_for_update(skip_locked=True)`` on
PostgreSQL (a no-op on SQLite, where IMMEDIATE transactions serialise writers) plus the
``lease_owner``/``lease_expires_at`` columns; a duplicate or late django-q2 task finds the lease
held, or the run not ready, and returns at once.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from django_inngest.conf import settings
from django_inngest.models import ACTIVE_STATUSES, FunctionRun, RunStatus, WaitKind


class LeaseKeeper:
    """Extends the run's lease from a background thread while a long step runs.

    It touches the database only after a third of the lease has passed, so short steps cost
    nothing. If the lease was taken over (we were presumed dead), ``lost`` is set and the step's
    result will be dropped at commit.
    """

    def __init__(self, run_id: str, owner: str) -> None:
        self.run_id, self.owner = run_id, owner
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._loop, name=f"lease-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        lease = float(settings.LEASE_SECONDS)
        touched = False
        try:
            while not self._stop.wait(lease / 3):
                touched = True
                extended = FunctionRun.objects.filter(
                    pk=self.run_id, lease_owner=self.owner
                ).update(lease_expires_at=timezone.now() + timedelta(seconds=lease))
                if not extended:
                    self.lost = True
                    return
        finally:
            if touched:
                connection.close()


class Claim(NamedTuple):
    run: FunctionRun
    #: The previous lease expired: its worker died (or lost its connection) mid-run.
    recovered: bool
    #: Never claimed before, so the run has no steps yet.
    first: bool


def claim(run_id: str, owner: str) -> Claim | None:
    """Take the run's lease if it is ready and free; None if it is not (a duplicate task).

    ``select_for_update(skip_locked=True)`` on PostgreSQL (a no-op on SQLite, where IMMEDIATE
    transactions serialise writers) plus the lease columns make the claim exclusive.
    """
    now = timezone.now()
    lease = timedelta(seconds=float(settings.LEASE_SECONDS))
    with transaction.atomic():
        run = (
            FunctionRun.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event")
            .filter(pk=run_id, status__in=ACTIVE_STATUSES, ready_at__lte=now)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
            .first()
        )
        if run is None:
            return None
        recovered, first = bool(run.lease_owner), run.started_at is None
        run.lease_owner = owner
        run.lease_expires_at = now + lease
        run.status = RunStatus.RUNNING
        run.wait_kind = WaitKind.NONE
        run.started_at = run.started_at or now
        run.save(
            update_fields=["lease_owner", "lease_expires_at", "status", "wait_kind", "started_at"]
        )
    return Claim(run, recovered, first)


def poll_due_runs(limit: int = 200) -> list[str]:
    """Runs whose time has come and that no live worker holds, and that were not dispatched
    since (a sleep ended, a timeout passed, a retry is due, a task was lost, a worker died).
    Marks them dispatched and returns their IDs; ``skip_locked`` lets several pollers share.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=float(settings.REDISPATCH_AFTER_SECONDS))
    lease_free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    not_recently_dispatched = (
        Q(dispatched_at__isnull=True)
        | Q(dispatched_at__lt=stale)
        | Q(dispatched_at__lt=F("ready_at"))
        | Q(lease_expires_at__lt=now)
    )
    with transaction.atomic():
        ids = list(
            FunctionRun.objects.select_for_update(skip_locked=True)
            .filter(status__in=ACTIVE_STATUSES, ready_at__lte=now)
            .filter(lease_free)
            .filter(not_recently_dispatched)
            .order_by("ready_at")
            .values_list("run_id", flat=True)[:limit]
        )
        if ids:
            FunctionRun.objects.filter(pk__in=ids).update(dispatched_at=now)
    return ids
