"""django_inngest's own receivers and worker hooks, connected once the app is ready."""

from __future__ import annotations

from typing import Any

from django_inngest import executor, poller
from django_inngest.engine import worker
from django_inngest.engine.lifecycle import emit_cancelled_event
from django_inngest.models import FunctionRun
from django_inngest.registrations import sync_registrations
from django_inngest.signals import function_cancelled


def emit_function_cancelled(sender: type[FunctionRun], run: FunctionRun, **_: Any) -> None:
    """Turn every cancellation into Inngest's ``inngest/function.cancelled`` system event."""
    emit_cancelled_event(run)


def sync_after_migrate(**_: Any) -> None:
    sync_registrations()


def connect() -> None:
    function_cancelled.connect(
        emit_function_cancelled, sender=FunctionRun, dispatch_uid="django_inngest.emit_cancelled"
    )
    executor.install_worker_entry(worker.execute_runs)
    executor.on_worker_start(poller.start_poller)
    executor.connect_worker_signals()
