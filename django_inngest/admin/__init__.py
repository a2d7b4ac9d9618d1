"""Django admin for django_inngest: read-only views of the engine's rows, plus cancel and rerun.

Every row here is written by the engine; the admin only reads them. The only writes are the
actions (cancel, rerun, bulk cancel), and they go through the same services the REST API and
the management commands use.
"""

from __future__ import annotations

from django_inngest.admin.cancellations import CancellationAdmin
from django_inngest.admin.events import EventAdmin, ListenerAdmin
from django_inngest.admin.functions import FunctionRegistrationAdmin
from django_inngest.admin.runs import FunctionRunAdmin
from django_inngest.admin.sdk_apps import SdkAppAdmin
from django_inngest.admin.steps import StepRunAdmin

__all__ = [
    "CancellationAdmin",
    "EventAdmin",
    "FunctionRegistrationAdmin",
    "FunctionRunAdmin",
    "ListenerAdmin",
    "SdkAppAdmin",
    "StepRunAdmin",
]
