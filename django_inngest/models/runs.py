"""Runs: one row per run of a function. Its state changes belong to
``run_transitions.FunctionRunQuerySet``."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_inngest.ids import new_ulid
from django_inngest.models.choices import (
    TERMINAL_STATUSES,
    CancelSource,
    RunStatus,
    WaitKind,
)
from django_inngest.models.events import Event
from django_inngest.models.functions import FunctionRegistration
from django_inngest.models.run_transitions import FunctionRunQuerySet


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
        _("blocked on"), max_length=16, choices=WaitKind.choices, default=WaitKind.NONE, blank=True
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
    function_missing_since = models.DateTimeField(
        _("function missing since"),
        null=True,
        blank=True,
        help_text=_(
            "A worker did not know the run's function (a rolling deploy) at this time; the run "
            "fails if none does within DJANGO_INNGEST_FUNCTION_NOT_FOUND_GRACE_SECONDS."
        ),
    )
    # -- flow control (see ``ingest.flow`` and ``engine.gates``) ----------------------------
    queue_at = models.DateTimeField(
        _("queue position"),
        null=True,
        blank=True,
        help_text=_("Creation time minus the priority factor: the order runs get slots."),
    )
    priority = models.IntegerField(_("priority factor (s)"), default=0)
    gated = models.BooleanField(
        _("gated"),
        default=False,
        help_text=_("Claimed one at a time, through its throttle and concurrency limits."),
    )
    gates = models.JSONField(
        _("flow limits"),
        default=dict,
        blank=True,
        help_text=_("Evaluated throttle and concurrency keys with their limits, batch size."),
    )
    waiting_key = models.CharField(  # noqa: DJ001
        _("waiting for concurrency key"), max_length=80, null=True, blank=True
    )
    debounce_key = models.CharField(  # noqa: DJ001
        _("debounce key"), max_length=80, null=True, blank=True
    )
    batch_key = models.CharField(_("batch key"), max_length=80, null=True, blank=True)  # noqa: DJ001
    singleton_key = models.CharField(  # noqa: DJ001
        _("singleton key"), max_length=80, null=True, blank=True
    )
    start_by = models.DateTimeField(_("start timeout at"), null=True, blank=True)
    finish_after = models.DurationField(_("finish timeout"), null=True, blank=True)
    finish_by = models.DateTimeField(_("finish timeout at"), null=True, blank=True)
    cron = models.CharField(_("cron"), max_length=300, blank=True, default="")

    objects = FunctionRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("function run")
        verbose_name_plural = _("function runs")
        ordering = ("-created_at",)
        permissions = (
            ("cancel_functionrun", _("Can cancel function run")),
            ("rerun_functionrun", _("Can rerun function run")),
        )
        constraints = (
            # One pending debounce, one open batch, one active singleton run per key.
            models.UniqueConstraint(
                fields=("function", "debounce_key"),
                name="inngest_run_one_debounce",
                condition=models.Q(status="Queued", wait_kind="debounce"),
            ),
            models.UniqueConstraint(
                fields=("function", "batch_key"),
                name="inngest_run_one_batch",
                condition=models.Q(status="Queued", wait_kind="batch"),
            ),
            models.UniqueConstraint(
                fields=("function", "singleton_key"),
                name="inngest_run_one_singleton",
                condition=models.Q(status__in=("Queued", "Running"), singleton_key__isnull=False),
            ),
        )
        indexes = (
            # Who is next for a concurrency slot, in priority order.
            models.Index(
                fields=("waiting_key", "queue_at"),
                name="inngest_run_slot_queue",
                condition=models.Q(waiting_key__isnull=False),
            ),
            models.Index(
                fields=("start_by",),
                name="inngest_run_start_by",
                condition=models.Q(status__in=("Queued", "Running"), start_by__isnull=False),
            ),
            models.Index(
                fields=("finish_by",),
                name="inngest_run_finish_by",
                condition=models.Q(status__in=("Queued", "Running"), finish_by__isnull=False),
            ),
            # The executor's poll: active runs whose time has come.
            models.Index(
                fields=("ready_at",),
                name="inngest_run_ready",
                condition=models.Q(status__in=("Queued", "Running")),
            ),
            models.Index(fields=("function", "-created_at"), name="inngest_run_fn_created"),
            models.Index(fields=("status", "-created_at"), name="inngest_run_status_created"),
            # Runs whose worker died: leases that expired (``engine.recovery``).
            models.Index(
                fields=("lease_expires_at",),
                name="inngest_run_leased",
                condition=models.Q(status="Running") & ~models.Q(lease_owner=""),
            ),
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

    def trigger_payloads(self) -> list[dict[str, Any]]:
        """The events the run handles (``ctx.events``): a batch's, in order, or its trigger."""
        if "batch_max" not in (self.gates or {}):
            return [self.event.as_payload()]
        items = self.batch.select_related("event").order_by("position")
        return [item.event.as_payload() for item in items]

    def waiting_reason(self) -> str:
        """Why an active run is not advancing, for operators ("" when it is not waiting)."""
        if self.is_ended:
            return ""
        when = self.ready_at.isoformat() if self.ready_at else ""
        gates = self.gates or {}
        if self.wait_kind == WaitKind.CONCURRENCY:
            labels = {
                e["key"]: e.get("label") or "(function)" for e in gates.get("concurrency", ())
            }
            return f"waiting for a concurrency slot (key {labels.get(self.waiting_key or '', '?')})"
        if self.wait_kind == WaitKind.THROTTLE:
            return f"throttled until {when}"
        if self.wait_kind == WaitKind.DEBOUNCE:
            return f"debouncing until {when}"
        if self.wait_kind == WaitKind.BATCH:
            size = self.batch.count()
            return f"batching ({size} of {gates.get('batch_max', '?')}) until {when}"
        if self.wait_kind == WaitKind.SCHEDULED:
            return f"scheduled for {when}"
        return ""
