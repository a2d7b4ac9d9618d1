"""Handing incoming events to the pending ``cancel_on`` rules and ``wait_for_event`` waits they
match: a matched rule cancels its run, a matched wait resumes its step.

Candidates come from one indexed query per batch of events (``Listener.objects.candidates``,
see ``models.listeners``); only candidates get a CEL evaluation.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django_inngest import matching
from django_inngest.engine import cancellation, wakeups
from django_inngest.models import CancelSource, Event, Listener, ListenerKind


def deliver(events: Sequence[Event], payloads: Sequence[dict[str, Any]], now: datetime) -> None:
    """Cancel the runs whose cancel rules match, and resume the waits that match, for a batch
    of events (with their payloads) in order, with one indexed query for the whole batch."""
    if not events:
        return
    keys = [set(matching.event_keys(payload)) for payload in payloads]
    position = {event.internal_id: index for index, event in enumerate(events)}
    found = Listener.objects.candidates({e.name for e in events}, set().union(*keys), now)
    by_name: dict[str, list[Listener]] = defaultdict(list)
    for listener in found:
        by_name[listener.event_name].append(listener)
    for index, event in enumerate(events):
        for listener in by_name.get(event.name, ()):
            # An event never cancels the run it started, nor one a later event in the batch
            # started: it only sees the listeners that existed before it.
            if position.get(listener.trigger_event_id, -1) >= index:
                continue
            if not listener.accepts(keys[index], payloads[index]):
                continue
            if listener.kind == ListenerKind.CANCEL:
                try:
                    cancellation.cancel_run(
                        listener.run_id,
                        source=CancelSource.EVENT,
                        reason=f"cancel_on event {event.name}",
                        cancelled_by_event=event,
                    )
                except (cancellation.RunAlreadyEndedError, cancellation.RunNotFoundError):
                    # The run ended after its listener was read: the cancel simply comes too
                    # late. The event itself is accepted and stored all the same.
                    continue
            else:
                wakeups.resume_wait(listener, payloads[index], event_id=event.internal_id)


def candidates(event: Event, payload: dict[str, Any], now: datetime) -> list[Listener]:
    """One event's candidate listeners: the indexed query ``deliver`` makes, alone (for
    inspection and benchmarks)."""
    keys = set(matching.event_keys(payload))
    found = Listener.objects.candidates({event.name}, keys, now)
    return [listener for listener in found if listener.trigger_event_id != event.internal_id]


def matching_listeners(event: Event, now: datetime) -> list[Listener]:
    """The listeners one event would act on: candidates whose expression holds."""
    payload = event.as_payload()
    keys = set(matching.event_keys(payload))
    return [c for c in candidates(event, payload, now) if c.accepts(keys, payload)]


def supersede(run_id: str, reason: str) -> None:
    """Cancel an active singleton run that a new run of its key replaces (``Singleton(mode=
    "cancel")``), through the one cancel service: source "singleton", and
    ``inngest/function.cancelled`` as for every cancel."""
    with contextlib.suppress(cancellation.RunAlreadyEndedError, cancellation.RunNotFoundError):
        cancellation.cancel_run(run_id, source=CancelSource.SINGLETON, reason=reason)
