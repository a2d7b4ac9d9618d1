"""The run row's lease: how a worker claims a run, keeps it during long steps, and how due or
abandoned runs are found again.

At most one worker advances a run. A claim is ``select_for_update(skip_locked=True)`` on
PostgreSQL (a no-op on SQLite, where IMMEDIATE transactions serialise writers) plus the
``lease_owner``/``lease_expires_at`` columns; a duplicate or late django-q2 task finds the lease
held, or the run not ready, and returns at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import NamedTuple

from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from django_inngest.conf import settings
from django_inngest.models import ACTIVE_STATUSES, Cancellation, FunctionRun, RunStatus, WaitKind

logger = logging.getLogger(__name__)


class Watch:
    """One step in flight, watched by the process's ``LeaseKeeper``."""

    def __init__(self, run_id: str, owner: str, on_long: Callable[[], None] | None) -> None:
        self.run_id, self.owner, self.on_long = run_id, owner, on_long
        self.touched = time.monotonic()
        self.closed = False
        #: Held while the keeper writes for this step, so the step's own commit never races it.
        self.lock = threading.Lock()


class LeaseKeeper:
    """One thread per process that keeps the leases of the steps this process is running.

    A step shorter than a third of the lease costs nothing: no thread start, no query. Past
    that, the keeper extends the run's lease every third of a lease and, once, calls the
    step's ``on_long`` (which records the attempt as Running, so that a worker killed inside a
    long step is attributed to that step).
    """

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(
        self, run_id: str, owner: str, on_long: Callable[[], None] | None = None
    ) -> Iterator[Watch]:
        entry = Watch(run_id, owner, on_long)
        with self._guard:
            self._watches.add(entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="inngest-lease", daemon=True
                )
                self._thread.start()
        try:
            yield entry
        finally:
            with entry.lock:  # wait out a keeper write in progress for this step
                entry.closed = True
            with self._guard:
                self._watches.discard(entry)

    def _loop(self) -> None:
        connected = False
        while True:
            lease = float(settings.LEASE_SECONDS)
            # Short naps: cheap (no query unless a step is due) and quick to notice new steps.
            time.sleep(min(1.0, max(0.05, lease / 6)))
            with self._guard:
                idle = not self._watches
                due = [w for w in self._watches if time.monotonic() - w.touched >= lease / 3]
            if idle and connected:
                connection.close()  # no long step left: hold no connection while idle
                connected = False
            if not due:
                continue
            try:
                close_old_connections()
                connected = True
                for entry in due:
                    self._touch(entry, lease)
            except Exception:
                logger.exception("Lease keeper error; retrying")

    @staticmethod
    def _touch(entry: Watch, lease: float) -> None:
        with entry.lock:
            if entry.closed:
                return
            entry.touched = time.monotonic()
            extended = FunctionRun.objects.filter(pk=entry.run_id, lease_owner=entry.owner).update(
                lease_expires_at=timezone.now() + timedelta(seconds=lease)
            )
            # Lease taken over (we were presumed dead): write nothing more. The step's own
            # commit checks ownership too, so its result will be dropped.
            if extended and entry.on_long is not None:
                on_long, entry.on_long = entry.on_long, None
                on_long()


lease_keeper = LeaseKeeper()


def _loaded() -> QuerySet[FunctionRun]:
    """The run with its trigger, and whether its function has any bulk cancellation (so that
    the check before each step costs no query in the usual case of none)."""
    return FunctionRun.objects.select_related("event").annotate(
        has_bulk_cancellations=Exists(Cancellation.objects.filter(function=OuterRef("function")))
    )


class Claim(NamedTuple):
    run: FunctionRun
    #: The previous lease expired: its worker died (or lost its connection) mid-run.
    recovered: bool
    #: Never claimed before, so the run has no steps yet.
    first: bool


def claim_new(run_ids: Sequence[str], owner: str) -> dict[str, Claim]:
    """Take the leases of those runs that were never claimed, in one conditional UPDATE.

    The common case, new runs dispatched together, costs one UPDATE and one SELECT for the
    whole batch. The UPDATE is atomic on both databases: a concurrent claimer re-checks the
    WHERE after the row lock and gets 0, so each run goes to exactly one caller.
    """
    now = timezone.now()
    lease = timedelta(seconds=float(settings.LEASE_SECONDS))
    claimed = FunctionRun.objects.filter(
        pk__in=run_ids,
        status=RunStatus.QUEUED,
        started_at__isnull=True,
        lease_owner="",
        ready_at__lte=now,
    ).update(
        lease_owner=owner,
        lease_expires_at=now + lease,
        status=RunStatus.RUNNING,
        wait_kind=WaitKind.NONE,
        started_at=now,
    )
    if not claimed:
        return {}
    return {
        run.run_id: Claim(run, recovered=False, first=True)
        for run in _loaded().filter(pk__in=run_ids, lease_owner=owner)
    }


def release(run_ids: Sequence[str], owner: str) -> None:
    """Hand back runs a task claimed but did not start, and dispatch them again at once.

    Only runs still held by ``owner`` and never started under it go back to Queued; a run not
    claimed by this task is simply dispatched again (its claim decides, as always).
    """
    from django_inngest.runs import dispatch_on_commit

    now = timezone.now()
    with transaction.atomic():
        FunctionRun.objects.filter(
            pk__in=run_ids, status=RunStatus.RUNNING, lease_owner=owner, steps__isnull=True
        ).update(
            status=RunStatus.QUEUED,
            lease_owner="",
            lease_expires_at=None,
            started_at=None,
            dispatched_at=now,
        )
        dispatch_on_commit(list(run_ids))


def claim_again(run_id: str, owner: str) -> Claim | None:
    """Claim a run that was claimed before: resumed from a pause, or whose worker died."""
    now = timezone.now()
    lease = timedelta(seconds=float(settings.LEASE_SECONDS))
    with transaction.atomic():
        run = (
            _loaded()
            .select_for_update(skip_locked=True, of=("self",))
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
