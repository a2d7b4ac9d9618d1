"""The payloads of the ``inngest/function.*`` system events, in Inngest's exact shapes."""

from __future__ import annotations

import time
from typing import Any

from django_inngest.function import CANCELLED_EVENT, FAILED_EVENT, FINISHED_EVENT
from django_inngest.ids import new_ulid
from django_inngest.models import FunctionRun, RunStatus

#: Inngest's documented ``data.error`` for ``inngest/function.cancelled``.
CANCELLED_ERROR = {"error": "function cancelled", "message": "function cancelled", "name": "Error"}
#: Runs triggered by these emit no system events ("don't recursively trigger finish handlers").
NO_SYSTEM_EVENTS_FOR = (FAILED_EVENT, FINISHED_EVENT)


def system_event(
    name: str, data: dict[str, Any], *, event_id: str, ts_ms: int | None = None
) -> dict[str, Any]:
    """An ``inngest/...`` event's payload."""
    return {
        "name": name,
        "data": data,
        "id": event_id,
        "ts": ts_ms if ts_ms is not None else time.time_ns() // 1_000_000,
    }


def base_data(run: FunctionRun) -> dict[str, Any]:
    events = run.trigger_payloads()
    return {
        "event": events[0],
        "events": events,
        "function_id": run.function_id,
        "run_id": run.run_id,
    }


def emits_system_events(run: FunctionRun) -> bool:
    return run.event.name not in NO_SYSTEM_EVENTS_FOR


def terminal_events(run: FunctionRun) -> list[dict[str, Any]]:
    """``inngest/function.finished`` for every ended run, plus ``function.failed`` on failure;
    none for runs that system events triggered."""
    if not emits_system_events(run):
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


def cancelled_event(run: FunctionRun) -> dict[str, Any]:
    """``inngest/function.cancelled``: the run ID is the event ID; ``ts`` the cancel time.

    Inngest's fields are exactly Inngest's. Who cancelled and why goes under ``data._inngest``,
    the key Inngest reserves for its own metadata (it strips it from events users send, and
    SDKs hand ``data`` through untouched), so no consumer of Inngest's shape sees a change.
    """
    ts = int(run.ended_at.timestamp() * 1000) if run.ended_at else time.time_ns() // 1_000_000
    data = {"error": dict(CANCELLED_ERROR), **base_data(run)}
    data["_inngest"] = cancel_details(run)
    return system_event(CANCELLED_EVENT, data, event_id=run.run_id, ts_ms=ts)


def cancel_details(run: FunctionRun) -> dict[str, Any]:
    """Who cancelled a run and why, as ``data._inngest`` of its ``function.cancelled``."""
    return {
        "source": run.cancel_source or None,
        "reason": run.cancel_reason or None,
        "actor": run.cancel_actor or None,
        "cancel_event_id": run.cancel_event_id or None,
        "cancellation_id": run.cancellation_id or None,
    }
