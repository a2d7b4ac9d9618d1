"""The one owner of every change to a run's state: ``FunctionRunQuerySet``.

A run's status, lease (``lease_owner``, ``lease_expires_at``) and readiness (``ready_at``,
``dispatched_at``, ``wait_kind``) are written by the transitions below and nowhere else. Each is
named for what it means (claim, release, pause, wake, end), and each that a lease holder makes is
conditional on ``owned_by(owner)``, "still Running under my lease", so that a cancel or a lease
takeover committed first makes the write a no-op that the caller sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, Unpack

from django.db import models
from django.db.models import (
    Case,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from django_inngest import database
from django_inngest.models.cancellations import Cancellation
from django_inngest.models.choices import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    RunStatus,
    WaitKind,
)
from django_inngest.models.run_statements import complete_if_owned

if TYPE_CHECKING:
    from django_inngest.models.runs import FunctionRun


class EndDetails(TypedDict, total=False):
    """What an ended run records besides its status and time."""

    output: Any
    error: dict[str, Any] | None
    cancel_source: str
    cancel_reason: str
    cancel_actor: str
    cancel_event_id: str | None
    cancellation_id: str | None


def ended_values(status: RunStatus, now: datetime, **details: Unpack[EndDetails]) -> dict[str, Any]:
    """An ended run's columns (by attname): the one definition of what ending writes."""
    return {
        "status": status,
        "ended_at": now,
        "output": details.get("output") if status == RunStatus.COMPLETED else None,
        "error": details.get("error"),
        "ready_at": None,
        "wait_kind": WaitKind.NONE,
        "lease_owner": "",
        "lease_expires_at": None,
        "cancel_source": details.get("cancel_source", ""),
        "cancel_reason": details.get("cancel_reason", ""),
        "cancel_actor": details.get("cancel_actor", ""),
        "cancel_event_id": details.get("cancel_event_id"),
        "cancellation_id": details.get("cancellation_id"),
    }


#: Decides whether a gated run may start now (``engine.gates.admit``); parks it if not.
Admission = Callable[["FunctionRun", str, datetime], bool]


def _finish_deadline(now: datetime) -> Case:
    """``now + finish_after`` where the run has a finish timeout (an SQL expression, so that
    ``claim_new`` stays one UPDATE)."""
    return Case(
        When(
            finish_after__isnull=False,
            then=ExpressionWrapper(Value(now) + F("finish_after"), output_field=DateTimeField()),
        ),
        default=Value(None, output_field=DateTimeField()),
    )


class Claim(NamedTuple):
    """A run a worker now holds the lease of."""

    run: FunctionRun
    #: The previous lease expired: its worker died (or lost its connection) mid-run.
    recovered: bool
    #: Never claimed before, so the run has no steps yet.
    first: bool


class Completion(NamedTuple):
    """A returned handler's end, written with others by ``end_completed``."""

    run_id: str
    owner: str
    ended_at: datetime
    output: Any


class FunctionRunQuerySet(models.QuerySet["FunctionRun"]):
    # -- filters ------------------------------------------------------------------------------
    def active(self) -> FunctionRunQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def ended(self) -> FunctionRunQuerySet:
        return self.filter(status__in=TERMINAL_STATUSES)

    def owned_by(self, owner: str) -> FunctionRunQuerySet:
        """Still Running under ``owner``'s lease: the condition of every write a worker makes."""
        return self.filter(status=RunStatus.RUNNING, lease_owner=owner)

    def lease_free(self, now: datetime) -> FunctionRunQuerySet:
        """No live lease: never claimed, paused, or its worker presumed dead."""
        return self.filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))

    def ready(self, now: datetime) -> FunctionRunQuerySet:
        """Active runs whose time has come."""
        return self.active().filter(ready_at__lte=now)

    def loaded(self) -> FunctionRunQuerySet:
        """With the trigger, and whether the function has any bulk cancellation (so that the
        check before each step costs no query in the usual case of none)."""
        return self.select_related("event").annotate(
            has_bulk_cancellations=Exists(
                Cancellation.objects.filter(function=OuterRef("function"))
            )
        )

    def locked(self, run_id: str) -> FunctionRun | None:
        """The run with its trigger, row-locked until the caller's transaction ends."""
        return self.select_for_update().select_related("event").filter(pk=run_id).first()

    # -- claiming -----------------------------------------------------------------------------
    def claim_new(self, run_ids: Sequence[str], owner: str, now: datetime, lease: timedelta) -> int:
        """Take the leases of those runs that were never claimed, in one conditional UPDATE.

        Atomic on both databases: a concurrent claimer re-checks the WHERE after the row lock
        and updates nothing, so each run goes to exactly one caller. Returns how many it took.
        Gated runs (throttle, concurrency) are left to ``claim_again``, which admits them one by
        one. A run with a finish timeout gets its deadline here, counted from its start.
        """
        return self.filter(
            pk__in=run_ids,
            status=RunStatus.QUEUED,
            started_at__isnull=True,
            lease_owner="",
            ready_at__lte=now,
            gated=False,
        ).update(
            lease_owner=owner,
            lease_expires_at=now + lease,
            status=RunStatus.RUNNING,
            wait_kind=WaitKind.NONE,
            started_at=now,
            finish_by=_finish_deadline(now),
        )

    def claim_again(
        self,
        run_id: str,
        owner: str,
        now: datetime,
        lease: timedelta,
        admit: Admission | None = None,
    ) -> Claim | None:
        """Claim a run that was claimed before (resumed from a pause, or whose worker died), or
        a gated one, if it is ready and no live lease holds it; ``skip_locked`` lets concurrent
        claimers pass.

        A gated run must also pass ``admit`` (its throttle and concurrency limits), inside this
        transaction; if it may not start now, ``admit`` parks it and nothing is claimed.
        """
        with database.atomic():
            run = (
                self.loaded()
                .select_for_update(skip_locked=True, of=("self",))
                .ready(now)
                .lease_free(now)
                .filter(pk=run_id)
                .first()
            )
            if run is None:
                return None
            if run.gated and admit is not None and not admit(run, owner, now):
                return None
            recovered, first = bool(run.lease_owner), run.started_at is None
            if first and run.finish_after is not None:
                run.finish_by = now + run.finish_after
            run.lease_owner = owner
            run.lease_expires_at = now + lease
            run.status = RunStatus.RUNNING
            run.wait_kind = WaitKind.NONE
            run.waiting_key = None
            run.started_at = run.started_at or now
            run.save(
                update_fields=[
                    "lease_owner",
                    "lease_expires_at",
                    "status",
                    "wait_kind",
                    "waiting_key",
                    "started_at",
                    "finish_by",
                ]
            )
        return Claim(run, recovered, first)

    def claim_admitted(
        self, runs: Sequence[FunctionRun], owner: str, now: datetime, lease: timedelta
    ) -> None:
        """Claim gated runs ``engine.gates`` admitted together (their rows locked by the
        caller's transaction), in one UPDATE."""
        if not runs:
            return
        values: dict[str, Any] = {
            "lease_owner": owner,
            "lease_expires_at": now + lease,
            "status": RunStatus.RUNNING,
            "wait_kind": WaitKind.NONE,
            "waiting_key": None,
            "started_at": now,
        }
        self.filter(pk__in=[run.pk for run in runs]).update(
            finish_by=_finish_deadline(now), **values
        )
        for run in runs:
            for name, value in values.items():
                setattr(run, name, value)
            run.finish_by = now + run.finish_after if run.finish_after is not None else None

    def park_for_slots(self, waiting: dict[str, str], recheck: datetime) -> None:
        """``park`` several locked runs at once, each waiting for its concurrency key (one
        UPDATE)."""
        if waiting:
            self.filter(pk__in=list(waiting)).update(
                wait_kind=WaitKind.CONCURRENCY,
                ready_at=recheck,
                waiting_key=Case(*(When(pk=pk, then=Value(key)) for pk, key in waiting.items())),
                lease_owner="",
                lease_expires_at=None,
            )

    def first_waiting(self, keys: set[str]) -> dict[str, tuple[datetime, str]]:
        """For each key, the queue position (``queue_at``, run ID) of its first waiting run."""
        first: dict[str, tuple[datetime, str]] = {}
        if not keys:
            return first
        rows = (
            self.active().filter(waiting_key__in=keys).values_list("waiting_key", "queue_at", "pk")
        )
        for key, queue_at, pk in rows:
            if key is None or queue_at is None:
                continue
            if key not in first or (queue_at, pk) < first[key]:
                first[key] = (queue_at, pk)
        return first

    def park(
        self, run: FunctionRun, wait_kind: WaitKind, ready_at: datetime, waiting_key: str | None
    ) -> None:
        """A gated run that may not start now waits: until ``ready_at`` (a throttle's time, or
        a recheck), or until a slot of ``waiting_key`` frees (``wake_next_waiting``). The caller
        holds the run's row lock (``claim_again``); its lease, if any, is given up."""
        run.wait_kind, run.ready_at, run.waiting_key = wait_kind, ready_at, waiting_key
        self.filter(pk=run.pk).update(
            wait_kind=wait_kind,
            ready_at=ready_at,
            waiting_key=waiting_key,
            lease_owner="",
            lease_expires_at=None,
        )

    def wake_next_waiting(self, key: str, now: datetime) -> str | None:
        """A slot of ``key`` was released: make the first run waiting for it (in priority
        order) ready now. Returns its ID, to dispatch."""
        waiting = self.active().filter(waiting_key=key, ready_at__gt=now).order_by("queue_at", "pk")
        for run_id in waiting.values_list("pk", flat=True)[:1]:
            if self.filter(pk=run_id, ready_at__gt=now).update(ready_at=now, dispatched_at=now):
                return str(run_id)
        return None

    def waiting_ahead_of(self, run: FunctionRun, key: str) -> bool:
        """Another run waits for ``key`` from an earlier queue position: it goes first."""
        earlier = Q(queue_at__lt=run.queue_at) | Q(queue_at=run.queue_at, pk__lt=run.pk)
        return self.filter(earlier, waiting_key=key).active().exists()

    # -- holding runs back at creation (debounce, batching) -------------------------------------
    def extend_debounce(self, run_id: str, event_id: str, ready_at: datetime) -> bool:
        """A debounced run takes a newer event and fires later; False if it already fired."""
        return bool(
            self.filter(pk=run_id, status=RunStatus.QUEUED, wait_kind=WaitKind.DEBOUNCE).update(
                event_id=event_id, ready_at=ready_at
            )
        )

    def close_batch(self, run_id: str, now: datetime) -> bool:
        """A batch is full: its run is ready now. False if it already started (its timeout)."""
        return bool(
            self.filter(pk=run_id, status=RunStatus.QUEUED, wait_kind=WaitKind.BATCH).update(
                wait_kind=WaitKind.NONE, ready_at=now, dispatched_at=now
            )
        )

    def overdue(self, now: datetime) -> FunctionRunQuerySet:
        """Active runs past a start or finish timeout (``Timeouts``)."""
        return self.active().filter(
            Q(start_by__lt=now, started_at__isnull=True) | Q(finish_by__lt=now)
        )

    def release_unstarted(self, run_ids: Sequence[str], owner: str, now: datetime) -> int:
        """Hand back runs ``owner`` claimed but never started: Queued again, dispatched now."""
        return (
            self.filter(pk__in=run_ids, steps__isnull=True)
            .owned_by(owner)
            .update(
                status=RunStatus.QUEUED,
                lease_owner="",
                lease_expires_at=None,
                started_at=None,
                dispatched_at=now,
            )
        )

    def extend_lease(self, run_id: str, owner: str, until: datetime) -> bool:
        """The heartbeat of a long step. False if the lease was taken over meanwhile."""
        return bool(self.filter(pk=run_id, lease_owner=owner).update(lease_expires_at=until))

    def lock_owned(self, run_id: str, owner: str) -> bool:
        """Row-lock our run for the caller's transaction; False if it was cancelled or taken
        over (only the two columns that decide ownership are read)."""
        row = (
            self.select_for_update().filter(pk=run_id).values_list("status", "lease_owner").first()
        )
        return row == (RunStatus.RUNNING, owner)

    # -- pausing and waking ---------------------------------------------------------------------
    def pause(
        self,
        run_id: str,
        owner: str,
        *,
        ready_at: datetime | None,
        wait_kind: WaitKind,
        dispatched_at: datetime | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Release ``owner``'s lease until ``ready_at`` (None: until something wakes the run).

        Conditional on the lease: False if the run was cancelled or taken over. The UPDATE takes
        the row lock, so the rest of the caller's transaction (the step row, a listener) commits
        with it or not at all.
        """
        values: dict[str, Any] = {
            "ready_at": ready_at,
            "wait_kind": wait_kind,
            "lease_owner": "",
            "lease_expires_at": None,
        }
        if dispatched_at is not None:
            values["dispatched_at"] = dispatched_at
        if attempt is not None:
            values["attempt"] = attempt
        return bool(self.filter(pk=run_id).owned_by(owner).update(**values))

    def wake(self, run_id: str, now: datetime) -> bool:
        """Make a paused run ready now (a matching event, a finished child); False if ended."""
        return bool(self.active().filter(pk=run_id).update(ready_at=now, dispatched_at=now))

    def charge_attempt(self, run_id: str, owner: str, attempt: int) -> bool:
        """Record that the run's handler (not a step) used an attempt: a crash outside steps."""
        return bool(self.filter(pk=run_id).owned_by(owner).update(attempt=attempt))

    def take_due(self, now: datetime, redispatch_after: timedelta, limit: int) -> list[str]:
        """Runs whose time has come, that no live worker holds, and that were not dispatched
        since (a sleep ended, a timeout passed, a retry is due, a task was lost, a worker died).
        Marks them dispatched and returns their IDs; ``skip_locked`` lets several pollers share.
        """
        stale = now - redispatch_after
        not_recently_dispatched = (
            Q(dispatched_at__isnull=True)
            | Q(dispatched_at__lt=stale)
            | Q(dispatched_at__lt=F("ready_at"))
            | Q(lease_expires_at__lt=now)
        )
        with database.atomic():
            ids = list(
                self.select_for_update(skip_locked=True)
                .ready(now)
                .lease_free(now)
                .filter(not_recently_dispatched)
                .order_by("ready_at")
                .values_list("run_id", flat=True)[:limit]
            )
            if ids:
                self.filter(pk__in=ids).update(dispatched_at=now)
        return ids

    # -- ending ---------------------------------------------------------------------------------
    def end(
        self, run: FunctionRun, status: RunStatus, now: datetime, **details: Unpack[EndDetails]
    ) -> None:
        """Write a run's end. The caller holds the run's row lock and has checked it is active,
        so when completion and cancellation race exactly one of them gets here."""
        values = ended_values(status, now, **details)
        for name, value in values.items():
            setattr(run, name, value)
        self.filter(pk=run.pk).update(**values)

    def end_completed(self, done: Sequence[Completion], now: datetime) -> set[str]:
        """Complete many runs in one statement, each only while it is Running under its own
        owner's lease. Returns the runs written."""
        if not done:
            return set()
        same = {
            name: value
            for name, value in ended_values(RunStatus.COMPLETED, now).items()
            if name not in ("ended_at", "output")
        }
        return complete_if_owned(self.model, done, same)

    # -- a function this worker lacks (a rolling deploy: ``engine.unknown_functions``) --------
    def await_function(self, run_id: str, owner: str, *, now: datetime, retry_at: datetime) -> bool:
        """Release ``owner``'s lease until ``retry_at``, noting since when the function is missing."""
        released = {"ready_at": retry_at, "wait_kind": WaitKind.RETRY, "lease_owner": ""}
        since = Coalesce(F("function_missing_since"), Value(now))
        owned = self.filter(pk=run_id).owned_by(owner)
        return bool(owned.update(**released, lease_expires_at=None, function_missing_since=since))

    def function_found(self, run_id: str, owner: str) -> bool:
        """A worker that has the function holds the run: a later deploy gets a fresh grace."""
        missing = self.filter(pk=run_id, function_missing_since__isnull=False).owned_by(owner)
        return bool(missing.update(function_missing_since=None))

    def mark_cancel_signal_sent(self, run_id: str) -> bool:
        """The outbox flag of ``function_cancelled``: True for the one caller that sets it."""
        return bool(
            self.filter(pk=run_id, cancelled_signal_sent=False).update(cancelled_signal_sent=True)
        )
