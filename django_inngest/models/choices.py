"""The enumerations our tables store. Values are Inngest's spelling where Inngest shows them."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


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
    CONCURRENCY = "concurrency", _("Waiting for a concurrency slot")
    THROTTLE = "throttle", _("Throttled")
    DEBOUNCE = "debounce", _("Debouncing")
    BATCH = "batch", _("Batching")
    SCHEDULED = "scheduled", _("Scheduled")


class CancelSource(models.TextChoices):
    EVENT = "event", _("cancel_on event")
    API = "api", _("REST API")
    BULK = "bulk", _("Bulk cancellation")
    ADMIN = "admin", _("Django admin")
    CLI = "cli", _("Management command")
    PYTHON = "python", _("Python")
    TIMEOUT = "timeout", _("Timeout")
    SINGLETON = "singleton", _("Singleton")


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


class ListenerKind(models.TextChoices):
    CANCEL = "cancel", _("cancel_on")
    WAIT = "wait", _("wait_for_event")


class SkipReason(models.TextChoices):
    """Why an event started no run of a function it triggered."""

    RATE_LIMITED = "rate_limited", _("skipped: rate limited")
    IDEMPOTENCY = "idempotency", _("skipped: idempotency")
    SINGLETON = "singleton", _("skipped: singleton run active")
