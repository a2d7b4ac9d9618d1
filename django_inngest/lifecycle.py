"""Ending a run: the one place that writes a terminal status and emits terminal system events.

Callers hold the run's row lock inside ``transaction.atomic()`` and have checked that the run is
still active, so when completion and cancellation race exactly one of them gets here.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime
from typing import Any, TypedDict, Unpack

from django.db import transaction

from django_inngest import signals
from django_inngest.exceptions import StepError
from django_inngest.function import CANCELLED_EVENT, FAILED_EVENT, FINISHED_EVENT
from django_inngest.ids import new_ulid
from django_inngest.models import FunctionRun, Listener, RunStatus, WaitKind

logger = logging.getLogger(__name__)

#: Inngest's documented ``data.error`` for ``inngest/function.cancelled``.
CANCELLED_ERROR = {"error": "function cancelled", "message": "function cancelled", "name": "Error"}
#: Runs triggered by these emit no system events ("don't recursively trigger finish handlers").
_NO_SYSTEM_EVENTS_FOR = (FAILED_EVENT, FINISHED_EVENT)


def error_dict(exc: BaseException) -> dict[str, Any]:
    """Inngest's ``StandardError`` shape."""
    # A StepError re-raised from the handler keeps the failed step's own error name.
    name = (exc.name if isinstance(exc, StepError) else "") or type(exc).__name__
    message = getattr(exc, "message", None) or str(exc)
    return {
        "error": f"{name}: {message}" if message else name,
        "message": message,
        "name": name,
        "stack": "".join(traceback.format_exception(exc)),
    }


def base_data(run: FunctionRun) -> dict[str, Any]:
    trigger = run.event.as_payload()
    return {
        "event": trigger,
        "events": [trigger],
        "function_id": run.function_id,
        "run_id": run.run_id,
    }


def cancelled_event_data(run: FunctionRun) -> dict[str, Any]:
    return {"error": dict(CANCELLED_ERROR), **base_data(run)}


class EndDetails(TypedDict, total=False):
    """What an ended run records besides its status and time."""

    output: Any
    error: dict[str, Any] | None
    cancel_source: str
    cancel_reason: str
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
        "cancellation_id": details.get("cancellation_id"),
    }


def terminal_values(
    run: FunctionRun, status: RunStatus, now: datetime, **details: Unpack[EndDetails]
) -> dict[str, Any]:
    """Set the ended run's attributes; returns them by column, for a save or an UPDATE."""
    values = ended_values(status, now, **details)
    for name, value in values.items():
        setattr(run, name, value)
    return values


def finish_run(
    run: FunctionRun,
    status: RunStatus,
    now: datetime,
    **details: Unpack[EndDetails],
) -> None:
    values = terminal_values(run, status, now, **details)
    run.save(update_fields=list(values))
    after_runs_ended([run], with_listeners=[run.run_id])


def after_runs_ended(runs: list[FunctionRun], *, with_listeners: list[str]) -> None:
    """What follows a terminal write, for a batch of runs in the caller's transaction: their
    listeners go, their system events are sent (one insert and one listener lookup for the
    batch), invoking parents are resumed, and the signals are sent after commit."""
    from django_inngest import waits
    from django_inngest.events import send_events

    if not runs:
        return
    # Pending waits, cancel rules and timers die with the run.
    if with_listeners:
        Listener.objects.filter(run_id__in=with_listeners).delete()
    payloads = [p for run in runs for p in _terminal_events(run)]
    if payloads:
        send_events(payloads, system=True, dedupe=False)
    for run in runs:
        if run.parent_run_id:
            waits.resolve_invoke(
                run.parent_run_id, run.parent_step_id, run.status, run.output, run.error
            )
        logger.info(
            "Run ended run_id=%s function=%s status=%s", run.run_id, run.function_id, run.status
        )

    def after_commit() -> None:
        for run in runs:
            signals.function_finished.send_robust(sender=FunctionRun, run=run)
            if run.status == RunStatus.CANCELLED:
                send_cancelled_signal(run)

    transaction.on_commit(after_commit)


def send_cancelled_signal(run: FunctionRun) -> None:
    for receiver, response in signals.function_cancelled.send_robust(
        sender=FunctionRun, run=run, source=run.cancel_source, reason=run.cancel_reason
    ):
        if isinstance(response, Exception):
            logger.error(
                "function_cancelled receiver %r failed for run_id=%s",
                receiver,
                run.run_id,
                exc_info=response,
            )


def _terminal_events(run: FunctionRun) -> list[dict[str, Any]]:
    """``inngest/function.finished`` for every ended run, plus ``function.failed`` on failure;
    none for runs that system events triggered ("don't recursively trigger finish handlers")."""
    from django_inngest.events import system_event

    if run.event.name in _NO_SYSTEM_EVENTS_FOR:
        return []
    assert run.ended_at is not None
    status, ts = run.status, int(run.ended_at.timestamp() * 1000)
    finished = base_data(run)
    if status == RunStatus.COMPLETED:
        finished["result"] = run.output
    elif status == RunStatus.CANCELLED:
        finished["error"] = dict(CANCELLED_ERROR)
    else:
        finished["error"] = run.error
    if run.parent_run_id:
        finished["correlation_id"] = f"{run.parent_run_id}.{run.parent_step_id}"
    finished["_inngest"] = {"status": str(status)}
    events = [system_event(FINISHED_EVENT, finished, event_id=new_ulid(), ts_ms=ts)]
    if status == RunStatus.FAILED:
        # The run ID doubles as the event ID, so a repeat can never start on_failure twice.
        failed = {"error": run.error, **base_data(run)}
        events.append(system_event(FAILED_EVENT, failed, event_id=run.run_id, ts_ms=ts))
    return events


def emit_cancelled_event(run: FunctionRun) -> bool:
    """Emit ``inngest/function.cancelled`` once for a run (the outbox flag guards repeats)."""
    from django_inngest.events import send_system_event

    if run.event.name in _NO_SYSTEM_EVENTS_FOR:
        FunctionRun.objects.filter(pk=run.pk).update(cancelled_signal_sent=True)
        return False
    with transaction.atomic():
        claimed = FunctionRun.objects.filter(pk=run.pk, cancelled_signal_sent=False).update(
            cancelled_signal_sent=True
        )
        if not claimed:
            return False
        ts = int(run.ended_at.timestamp() * 1000) if run.ended_at else time.time_ns() // 1_000_000
        send_system_event(CANCELLED_EVENT, cancelled_event_data(run), event_id=run.run_id, ts_ms=ts)
    return True
