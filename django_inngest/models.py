"""The engine's tables. They, not django-q2's queue, are the source of truth for every run."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_inngest.ids import new_ulid


class Event(models.Model):
    """A stored event: from Python, the HTTP event API, a step, or the engine (system events)."""

    internal_id = models.CharField(
        _("internal ID"), primary_key=True, max_length=26, default=new_ulid, editable=False
    )
    external_id = models.CharField(
        _("sender ID"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("The sender's optional `id`, used for 24 h dedupe."),
    )
    name = models.CharField(_("name"), max_length=255)
    data = models.JSONField(_("data"), default=dict)
    user = models.JSONField(_("user"), default=dict)
    ts = models.BigIntegerField(_("timestamp (ms)"))
    v = models.CharField(_("version"), max_length=64, blank=True, default="")
    received_at = models.DateTimeField(_("received at"))
    is_duplicate = models.BooleanField(
        _("duplicate"),
        default=False,
        help_text=_("A repeated sender ID within the dedupe window: stored, but started nothing."),
    )

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ("-received_at",)
        indexes = (
            models.Index(fields=("name", "-received_at"), name="inngest_event_name_recv"),
            models.Index(fields=("-received_at",), name="inngest_event_recv"),
        )

    def __str__(self) -> str:
        return f"{self.name} ({self.internal_id})"

    def as_payload(self) -> dict[str, Any]:
        """The event as Inngest shows it inside system events and to handlers."""
        payload: dict[str, Any] = {
            "data": self.data,
            "id": self.external_id or self.internal_id,
            "name": self.name,
            "ts": self.ts,
            "user": self.user,
        }
        if self.v:
            payload["v"] = self.v
        return payload


class DedupeKey(models.Model):
    """A sender event ``id`` seen within the dedupe window.

    Claimed in the same transaction that stores the event: the primary key makes two concurrent
    senders of one ``id`` serialise, so exactly one of them starts functions.
    """

    key = models.CharField(_("sender ID"), primary_key=True, max_length=255)
    event_id = models.CharField(_("first event"), max_length=26)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)

    class Meta:
        verbose_name = _("dedupe key")
        verbose_name_plural = _("dedupe keys")

    def __str__(self) -> str:
        return self.key


class FunctionRegistration(models.Model):
    """A function known to the database, synced from code. Removed code makes it inactive."""

    function_id = models.CharField(
        _("function ID"), max_length=255, unique=True, help_text=_("Inngest's `app_id-fn_id`.")
    )
    app_id = models.CharField(_("app ID"), max_length=255)
    fn_id = models.CharField(_("local function ID"), max_length=255)
    name = models.CharField(_("name"), max_length=255)
    is_active = models.BooleanField(_("active"), default=True)
    config = models.JSONField(_("configuration"), default=dict)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("function")
        verbose_name_plural = _("functions")
        ordering = ("function_id",)
        indexes = (models.Index(fields=("app_id", "fn_id"), name="inngest_fn_app_local"),)

    def __str__(self) -> str:
        return self.function_id


class RunStatus(models.TextChoices):
    """Inngest's run statuses, with Inngest's spelling (they appear in the REST API)."""

    QUEUED = "Queued", _("Queued")
    RUNNING = "Running", _("Running")
    COMPLETED = "Completed", _("Completed")
    FAILED = "Failed", _("Failed")
    CANCELLED = "Cancelled", _("Cancelled")


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
TERMINAL_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class WaitKind(models.TextChoices):
    """What a Running run is blocked on, if anything; Inngest shows all of these as Running."""

    NONE = "", _("Not blocked")
    SLEEP = "sleep", _("Sleeping")
    EVENT = "event", _("Waiting for event")
    INVOKE = "invoke", _("Waiting for invoked function")
    RETRY = "retry", _("Waiting to retry")


class CancelSource(models.TextChoices):
    EVENT = "event", _("cancel_on event")
    API = "api", _("REST API")
    BULK = "bulk", _("Bulk cancellation")
    ADMIN = "admin", _("Django admin")
    CLI = "cli", _("Management command")
    PYTHON = "python", _("Python")


class FunctionRunQuerySet(models.QuerySet["FunctionRun"]):
    def active(self) -> FunctionRunQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def ended(self) -> FunctionRunQuerySet:
        return self.filter(status__in=TERMINAL_STATUSES)


class FunctionRun(models.Model):
    """One run of a function. ``ready_at`` and the lease drive the executor."""

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
        _("cancelled by"), max_length=8, choices=CancelSource.choices, blank=True, default=""
    )
    cancel_reason = models.TextField(_("cancel reason"), blank=True, default="")
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
        )

    def __str__(self) -> str:
        return f"{self.function_id} {self.run_id} ({self.status})"

    @property
    def is_ended(self) -> bool:
        return self.status in TERMINAL_STATUSES


class StepStatus(models.TextChoices):
    RUNNING = "Running", _("Running")
    COMPLETED = "Completed", _("Completed")
    FAILED = "Failed", _("Failed")
    RETRYING = "Retrying", _("Waiting to retry")
    SLEEPING = "Sleeping", _("Sleeping")
    WAITING = "Waiting", _("Waiting")


class StepKind(models.TextChoices):
    RUN = "run", _("step.run")
    SLEEP = "sleep", _("step.sleep")
    WAIT = "wait", _("step.wait_for_event")
    INVOKE = "invoke", _("step.invoke")
    SEND = "send", _("step.send_event")


class StepRun(models.Model):
    """A memoized step. A Completed step is never executed again."""

    run = models.ForeignKey(
        FunctionRun, on_delete=models.CASCADE, related_name="steps", verbose_name=_("run")
    )
    step_id = models.CharField(
        _("step ID"), max_length=255, help_text=_("Unique within the run; repeats get `:n`.")
    )
    position = models.PositiveIntegerField(_("position"))
    kind = models.CharField(_("kind"), max_length=8, choices=StepKind.choices)
    status = models.CharField(_("status"), max_length=10, choices=StepStatus.choices)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    attempt_log = models.JSONField(
        _("attempt log"),
        default=list,
        help_text=_("One entry per attempt: start, end and error, for the timeline."),
    )
    output = models.JSONField(_("output"), null=True, blank=True)
    error = models.JSONField(_("error"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    wake_at = models.DateTimeField(
        _("wakes at"), null=True, blank=True, help_text=_("A sleep's end, a wait's timeout.")
    )

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ("run", "position")
        constraints = (
            models.UniqueConstraint(fields=("run", "step_id"), name="inngest_step_unique_id"),
        )

    def __str__(self) -> str:
        return f"{self.step_id} ({self.status})"


class ListenerKind(models.TextChoices):
    CANCEL = "cancel", _("cancel_on")
    WAIT = "wait", _("wait_for_event")


class Listener(models.Model):
    """A pending cancel rule or ``wait_for_event`` ("pause" in Inngest).

    ``expression`` has the triggering event's values substituted, so it refers to ``async``
    only. ``match_key`` hashes one ``async.<path> == <literal>`` predicate of it, so an incoming
    event finds its candidates with one indexed lookup instead of a CEL evaluation per listener.
    """

    kind = models.CharField(_("kind"), max_length=8, choices=ListenerKind.choices)
    run = models.ForeignKey(
        FunctionRun, on_delete=models.CASCADE, related_name="listeners", verbose_name=_("run")
    )
    step_id = models.CharField(_("step ID"), max_length=255, blank=True, default="")
    event_name = models.CharField(_("event name"), max_length=255)
    expression = models.TextField(_("expression"), blank=True, default="")
    # NULL, not "", marks a listener the index cannot serve; the candidate query says IS NULL.
    match_key = models.CharField(_("match key"), max_length=40, null=True, blank=True)  # noqa: DJ001
    trigger_event_id = models.CharField(_("triggering event"), max_length=26)
    expires_at = models.DateTimeField(_("expires at"))
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("listener")
        verbose_name_plural = _("listeners")
        indexes = (
            models.Index(fields=("event_name", "match_key"), name="inngest_listener_match"),
            models.Index(fields=("expires_at",), name="inngest_listener_expiry"),
        )

    def __str__(self) -> str:
        return f"{self.kind} on {self.event_name} for {self.run_id}"


class Cancellation(models.Model):
    """A bulk cancellation (``POST /v1/cancellations``): a window and an optional ``if`` on ``event``."""

    id = models.CharField(
        _("ID"), primary_key=True, max_length=26, default=new_ulid, editable=False
    )
    name = models.CharField(_("name"), max_length=255, blank=True, default="")
    app_id = models.CharField(_("app ID"), max_length=255)
    function = models.ForeignKey(
        FunctionRegistration,
        to_field="function_id",
        db_column="function_id",
        on_delete=models.CASCADE,
        related_name="cancellations",
        verbose_name=_("function"),
    )
    started_after = models.DateTimeField(_("started after"), null=True, blank=True)
    started_before = models.DateTimeField(_("started before"))
    if_exp = models.TextField(_("if"), blank=True, default="")
    source = models.CharField(
        _("created by"), max_length=8, choices=CancelSource.choices, default=CancelSource.API
    )
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("bulk cancellation")
        verbose_name_plural = _("bulk cancellations")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.function_id} before {self.started_before:%Y-%m-%d %H:%M:%S}"
