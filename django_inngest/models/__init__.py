"""The engine's tables. They, not django-q2's queue, are the source of truth for every run."""

from __future__ import annotations

from django_inngest.models.cancellations import Cancellation
from django_inngest.models.choices import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    CancelSource,
    ListenerKind,
    RunStatus,
    SkipReason,
    StepKind,
    StepStatus,
    WaitKind,
)
from django_inngest.models.events import DedupeKey, Event
from django_inngest.models.flow import (
    ConcurrencySlot,
    CronSchedule,
    FlowLimit,
    RunEvent,
    SkippedRun,
)
from django_inngest.models.functions import FunctionRegistration
from django_inngest.models.listeners import Listener
from django_inngest.models.run_transitions import Claim, Completion, EndDetails, ended_values
from django_inngest.models.runs import FunctionRun
from django_inngest.models.sdk_apps import SdkApp
from django_inngest.models.steps import StepRun

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "CancelSource",
    "Cancellation",
    "Claim",
    "Completion",
    "ConcurrencySlot",
    "CronSchedule",
    "DedupeKey",
    "EndDetails",
    "Event",
    "FlowLimit",
    "FunctionRegistration",
    "FunctionRun",
    "Listener",
    "ListenerKind",
    "RunEvent",
    "RunStatus",
    "SdkApp",
    "SkipReason",
    "SkippedRun",
    "StepKind",
    "StepRun",
    "StepStatus",
    "WaitKind",
    "ended_values",
]
