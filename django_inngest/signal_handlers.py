"""django_inngest's own receivers."""

from __future__ import annotations

import logging
from typing import Any

from django_inngest.models import FunctionRun
from django_inngest.signals import function_cancelled

logger = logging.getLogger(__name__)


def emit_function_cancelled(sender: type[FunctionRun], run: FunctionRun, **_: Any) -> None:
    """Turn every cancellation into Inngest's ``inngest/function.cancelled`` system event."""
    from django_inngest.lifecycle import emit_cancelled_event

    emit_cancelled_event(run)


def sync_after_migrate(**_: Any) -> None:
    from django_inngest.registrations import sync_registrations

    sync_registrations()


def connect() -> None:
    from django_inngest.executor import connect_worker_signals

    function_cancelled.connect(
        emit_function_cancelled, sender=FunctionRun, dispatch_uid="django_inngest.emit_cancelled"
    )
    connect_worker_signals()
