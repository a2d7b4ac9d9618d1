"""The engine's tables. They, not django-q2's queue, are the source of truth for every run."""

from __future__ import annotations

from django_inngest.models.cancellations import Cancellation
from django_inngest.models.choices import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    CancelSource,
    ListenerKind,
    RunStatus,
    StepKind,
    StepStatus,
    WaitKind,
)
from django_inngest.models.events import DedupeKey, Event
from django_inngest.models.functions import FunctionRegistration
from django_inngest.models.listeners import Listener
from django_inngest.models.runs import Claim, Completion, EndDetails, FunctionRun, ended_values
from django_inngest.models.sdk_apps import SdkApp
from django_inngest.models.steps import StepRun

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "CancelSource",
    "Cancellation",
    "Claim",
    "Completion",
    "DedupeKey",
    "EndDetails",
    "Event",
    "FunctionRegistration",
    "FunctionRun",
    "Listener",
    "ListenerKind",
    "RunStatus",
    "SdkApp",
    "StepKind",
    "StepRun",
    "StepStatus",
    "WaitKind",
    "ended_values",
]
