"""Where a run emits events: ``step.send_event``, ``step.invoke`` and its terminal system events.

This is the domain's one recursion. Events in (``ingest``) cancel and wake runs (this engine);
a run that ends, sends or invokes emits events in turn. ``ingest`` sits above the engine and
imports it; the engine reaches back up only here, through the one import inside a function
in the package that closes a loop (``docs/architecture.md``). Everything else in the engine
imports downwards.
"""

from __future__ import annotations

from datetime import datetime
from types import ModuleType
from typing import Any

from django_inngest.function import Function
from django_inngest.models import FunctionRun


def _ingest() -> ModuleType:
    # The documented recursion: ingest -> engine (cancel, wake) -> here -> ingest.
    from django_inngest.ingest import events

    return events


def send(payloads: list[dict[str, Any]], *, system: bool = False) -> list[str]:
    """Send events from a run (its trigger rules, listeners and all); returns their IDs.

    ``system`` marks the engine's own ``inngest/function.*`` events: not deduplicated, and not
    held to ``MAX_EVENT_BYTES`` (a run must never be unable to end because its output is large).
    """
    ids: list[str] = _ingest().send_events(
        payloads, allow_internal=system, system=system, dedupe=not system
    )
    return ids


def start_invoked_run(
    target: Function, payload: dict[str, Any], parent: FunctionRun, step_id: str, now: datetime
) -> FunctionRun:
    """Store ``inngest/function.invoked`` and start ``target`` with it, whatever its triggers."""
    run: FunctionRun = _ingest().start_invoked_run(target, payload, parent, step_id, now)
    return run
