"""Pending ``cancel_on`` rules and ``wait_for_event`` waits, matched against incoming events.

At schedule time the triggering event's values are substituted into the expression (Inngest's
``Interpolate``), leaving only ``async``. One ``async.<path> == <literal>`` predicate is hashed
into ``match_key``; an incoming event computes the keys of its own leaves and fetches candidate
listeners with one indexed query. Only candidates get a CEL evaluation.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q

from django_inngest import expressions, matching
from django_inngest.function import Function
from django_inngest.models import Event, FunctionRun, Listener, ListenerKind
from django_inngest.statements import candidate_listeners

logger = logging.getLogger(__name__)


def _residual(expression: str | None, trigger_payload: dict[str, Any]) -> str:
    if not expression:
        return ""
    residual = expressions.interpolate(expression, trigger_payload)
    return "" if residual == "true" else residual


def cancel_listeners(
    run: FunctionRun, function: Function, trigger_payload: dict[str, Any], now: datetime
) -> list[Listener]:
    """The run's ``cancel_on`` rules as unsaved rows (the caller inserts a batch at once)."""
    rows = []
    for rule in function.cancel:
        residual = _residual(rule.expression, trigger_payload)
        if residual == "false":
            continue  # this trigger can never be cancelled by that rule (Inngest skips it too)
        rows.append(
            Listener(
                kind=ListenerKind.CANCEL,
                run=run,
                event_name=rule.event,
                expression=residual,
                match_key=matching.key_for_expression(residual) if residual else None,
                trigger_event_id=run.event_id,
                expires_at=now + rule.window,
                created_at=now,
            )
        )
    return rows


def create_wait_listener(
    run: FunctionRun,
    step_id: str,
    event_name: str,
    expression: str | None,
    trigger_payload: dict[str, Any],
    now: datetime,
    timeout: timedelta,
) -> Listener | None:
    """Returns None when the expression can never match (the wait simply times out)."""
    residual = _residual(expression, trigger_payload)
    if residual == "false":
        return None
    return Listener.objects.create(
        kind=ListenerKind.WAIT,
        run=run,
        step_id=step_id,
        event_name=event_name,
        expression=residual,
        match_key=matching.key_for_expression(residual) if residual else None,
        trigger_event_id=run.event_id,
        expires_at=now + timeout,
        created_at=now,
    )


def deliver(events: Sequence[Event], now: datetime) -> None:
    """Cancel the runs whose cancel rules match, and resume the waits that match, for a batch
    of events in order, with one indexed query for the whole batch."""
    from django_inngest import cancellation, waits
    from django_inngest.models import CancelSource

    if not events:
        return
    payloads = [event.as_payload() for event in events]
    keys = [set(matching.event_keys(payload)) for payload in payloads]
    position = {event.internal_id: index for index, event in enumerate(events)}
    rows = candidate_listeners({e.name for e in events}, set().union(*keys), now)
    by_name: dict[str, list[Listener]] = defaultdict(list)
    for listener in rows:
        by_name[listener.event_name].append(listener)
    for index, event in enumerate(events):
        for listener in by_name.get(event.name, ()):
            # An event never cancels the run it started, nor one a later event in the batch
            # started: it only sees the listeners that existed before it.
            if position.get(listener.trigger_event_id, -1) >= index:
                continue
            if listener.match_key is not None and listener.match_key not in keys[index]:
                continue
            if listener.expression and not expressions.evaluate(
                listener.expression, async_=payloads[index]
            ):
                continue
            if listener.kind == ListenerKind.CANCEL:
                try:
                    cancellation.cancel_run(
                        listener.run_id,
                        source=CancelSource.EVENT,
                        reason=f"cancel_on event {event.name} ({event.internal_id})",
                    )
                except (cancellation.RunAlreadyEndedError, cancellation.RunNotFoundError):
                    # The run ended after its listener was read: the cancel simply comes too
                    # late. The event itself is accepted and stored all the same.
                    continue
            else:
                waits.resume_wait(listener, event)


def candidates(event: Event, payload: dict[str, Any], now: datetime) -> list[Listener]:
    """One event's candidate listeners: the indexed query alone (inspection, benchmarks)."""
    return list(
        Listener.objects.filter(event_name=event.name, expires_at__gt=now)
        .filter(Q(match_key__in=matching.event_keys(payload)) | Q(match_key__isnull=True))
        .exclude(trigger_event_id=event.internal_id)
        .order_by("created_at", "id")
    )


def matching_listeners(event: Event, now: datetime) -> list[Listener]:
    """The listeners one event would act on: candidates whose expression holds."""
    payload = event.as_payload()
    return [
        listener
        for listener in candidates(event, payload, now)
        if not listener.expression or expressions.evaluate(listener.expression, async_=payload)
    ]
