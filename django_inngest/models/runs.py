"""Runs, and the one owner of every change to a run's state: ``FunctionRunQuerySet``.

A run's status, lease (``lease_owner``, ``lease_expires_at``) and readiness (``ready_at``,
``dispatched_at``, ``wait_kind``) are written by the transitions below and nowhere else. Each is
named for what it means (claim, release, pause, wake, end), and each that a lease holder makes is
conditional on ``owned_by(owner)``, "still Running under my lease", so that a cancel or a lease
takeover committed first makes the write a no-op that the caller sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypedDict, Unpack

from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils.translation import gettext_lazy as _

from django_inngest import database, sql
from django_inngest.ids import new_ulid
from django_inngest.models.cancellations import Cancellation
from django_inngest.models.choices import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    CancelSource,
    RunStatus,
    WaitKind,
)
from django_inngest.models.events import Event
from django_inngest.models.functions import FunctionRegistration


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
        """
        return self.filter(
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

    def claim_again(self, run_id: str, owner: str, now: datetime, lease: timedelta) -> Claim | None:
        """Claim a run that was claimed before (resumed from a pause, or whose worker died) if
        it is ready and no live lease holds it; ``skip_locked`` lets concurrent claimers pass."""
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
            recovered, first = bool(run.lease_owner), run.started_at is None
            run.lease_owner = owner
            run.lease_expires_at = now + lease
            run.status = RunStatus.RUNNING
            run.wait_kind = WaitKind.NONE
            run.started_at = run.started_at or now
            run.save(
                update_fields=[
                    "lease_owner",
                    "lease_expires_at",
                    "status",
                    "wait_kind",
                    "started_at",
                ]
            )
        return Claim(run, recovered, first)

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
        return _complete_if_owned(done, same)

    def mark_cancel_signal_sent(self, run_id: str) -> bool:
        """The outbox flag of ``function_cancelled``: True for the one caller that sets it."""
        return bool(
            self.filter(pk=run_id, cancelled_signal_sent=False).update(cancelled_signal_sent=True)
        )


_complete_sql_cache: dict[tuple[str, int, tuple[str, ...]], str] = {}


def _complete_sql(vendor: str, rows: int, same: tuple[str, ...]) -> str:
    key = (vendor, rows, same)
    if key in _complete_sql_cache:
        return _complete_sql_cache[key]
    connection = database.connection()

    def q(name: str | None) -> str:
        return sql.quote(connection, name)

    fields = {f.attname: f for f in FunctionRun._meta.concrete_fields}
    table = q(FunctionRun._meta.db_table)
    # PostgreSQL types a VALUES list from its literals: say what the two columns are.
    ended, output = ("%s::timestamptz", "%s::jsonb") if vendor == "postgresql" else ("%s", "%s")
    values = ", ".join([f"(%s, %s, {ended}, {output})"] * rows)
    assignments = ", ".join(
        [f"{q('ended_at')} = done.ended_at", f"{q('output')} = done.output"]
        + [f"{q(fields[name].column)} = %s" for name in same]
    )
    statement = (
        f"WITH done (run_id, owner, ended_at, output) AS (VALUES {values}) "
        f"UPDATE {table} SET {assignments} FROM done "
        f"WHERE {table}.{q('run_id')} = done.run_id AND {table}.{q('status')} = %s "
        f"AND {table}.{q('lease_owner')} = done.owner "
        f"RETURNING {table}.{q('run_id')}"
    )
    _complete_sql_cache[key] = statement
    return statement


def _complete_if_owned(done: Sequence[Completion], same: dict[str, Any]) -> set[str]:
    """The hand-written ``WITH ... UPDATE ... FROM (VALUES ...) RETURNING`` behind
    ``end_completed``: one round trip for a batch (the ORM has no multi-row conditional UPDATE)."""
    connection = database.connection()
    fields = {f.attname: f for f in FunctionRun._meta.concrete_fields}
    ended_field, output_field = fields["ended_at"], fields["output"]
    params: list[Any] = []
    for completion in done:
        params += [
            completion.run_id,
            completion.owner,
            ended_field.get_db_prep_save(completion.ended_at, connection),
            output_field.get_db_prep_save(completion.output, connection),
        ]
    names = tuple(same)
    params += [fields[name].get_db_prep_save(same[name], connection) for name in names]
    params.append(str(RunStatus.RUNNING))
    with connection.cursor() as cursor:
        cursor.execute(_complete_sql(connection.vendor, len(done), names), params)
        return {row[0] for row in cursor.fetchall()}


class FunctionRun(models.Model):
    """One run of a function. ``ready_at`` and the lease drive the executor.

    Its status, lease and ready columns are written only by ``FunctionRunQuerySet``'s
    transitions (``FunctionRun.objects.claim_new(...)`` and so on).
    """

    run_id = models.CharField(
        _("run ID"), primary_key=True, max_length=26, default=new_ulid, editable=False
    )
    function = models.ForeignKey(
        FunctionRegistration,
        to_field="function_id",
        db_column="function_id",
        on_delete=models.PROTECT,
        related_name="runs",
        verbose_name=_("function"),
    )
    event = models.ForeignKey(
        Event, on_delete=models.PROTECT, related_name="runs", verbose_name=_("triggering event")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED
    )
    wait_kind = models.CharField(
        _("blocked on"), max_length=8, choices=WaitKind.choices, default=WaitKind.NONE, blank=True
    )
    ready_at = models.DateTimeField(
        _("ready at"),
        null=True,
        blank=True,
        help_text=_("When the run may next be advanced (now, a sleep's end, a timeout, a retry)."),
    )
    dispatched_at = models.DateTimeField(_("last dispatched at"), null=True, blank=True)
    lease_owner = models.CharField(_("lease owner"), max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    attempt = models.PositiveIntegerField(
        _("attempt"), default=0, help_text=_("Retries used by errors raised outside any step.")
    )
    created_at = models.DateTimeField(_("created at"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    output = models.JSONField(_("output"), null=True, blank=True)
    error = models.JSONField(_("error"), null=True, blank=True)
    cancel_source = models.CharField(
        _("cancelled by"), max_length=16, choices=CancelSource.choices, blank=True, default=""
    )
    cancel_reason = models.TextField(_("cancel reason"), blank=True, default="")
    cancel_actor = models.CharField(
        _("cancelled by whom"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("The Django user, “signing key”, the OS user of the CLI, or the event."),
    )
    # NULL, not "", for "none": `x IS NOT NULL` is the partial-index condition that SQLite's
    # planner can match against `x = ?` (it cannot prove `x != ''`).
    cancel_event_id = models.CharField(  # noqa: DJ001
        _("cancelling event"),
        max_length=26,
        null=True,
        blank=True,
        help_text=_("Internal ID of the cancel_on event that cancelled the run."),
    )
    cancellation = models.ForeignKey(
        "Cancellation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
        verbose_name=_("bulk cancellation"),
    )
    cancelled_signal_sent = models.BooleanField(
        _("cancel signal sent"),
        default=False,
        help_text=_("Outbox flag: set once function_cancelled has been delivered for this run."),
    )
    parent_run = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invoked_runs",
        verbose_name=_("invoked by"),
    )
    parent_step_id = models.CharField(_("parent step"), max_length=255, blank=True, default="")
    original_run_id = models.CharField(
        _("rerun of"), max_length=26, blank=True, default="", help_text=_("Set on reruns.")
    )

    objects = FunctionRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("function run")
        verbose_name_plural = _("function runs")
        ordering = ("-created_at",)
        permissions = (
            ("cancel_functionrun", _("Can cancel function run")),
            ("rerun_functionrun", _("Can rerun function run")),
        )
        indexes = (
            # The executor's poll: active runs whose time has come.
            models.Index(
                fields=("ready_at",),
                name="inngest_run_ready",
                condition=models.Q(status__in=("Queued", "Running")),
            ),
            models.Index(fields=("function", "-created_at"), name="inngest_run_fn_created"),
            models.Index(fields=("status", "-created_at"), name="inngest_run_status_created"),
            # The outbox sweep for cancel signals lost to a crash.
            models.Index(
                fields=("ended_at",),
                name="inngest_run_cancel_outbox",
                condition=models.Q(status="Cancelled", cancelled_signal_sent=False),
            ),
            # The event page: the runs an event cancelled.
            models.Index(
                fields=("cancel_event_id",),
                name="inngest_run_cancel_event",
                condition=models.Q(cancel_event_id__isnull=False),
            ),
        )

    def __str__(self) -> str:
        return f"{self.function_id} {self.run_id} ({self.status})"

    @property
    def is_ended(self) -> bool:
        return self.status in TERMINAL_STATUSES
