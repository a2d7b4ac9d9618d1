"""Pending ``cancel_on`` rules and ``wait_for_event`` waits, matched against incoming events.

At schedule time the triggering event's values are substituted into the expression (Inngest's
``Interpolate``), leaving only ``async``. One ``async.<path> == <literal>`` predicate is hashed
into ``match_key``; an incoming event computes the keys of its own leaves and fetches candidate
listeners with one indexed query. Only candidates get a CEL evaluation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django_inngest import expressions, matching
from django_inngest.function import Function
from django_inngest.models import Event, FunctionRun, Listener, ListenerKind
from django_inngest.statements import candidate_listeners


def _residual(expression: str | None, trigger_payload: dict[str, Any]) -> str:
    if not expression:
        return ""
    residual = expressions.interpolate(expression, trigger_payload)
    return "" if residual == "true" else residual


def _listener(
    kind: ListenerKind,
    run: FunctionRun,
    event_name: str,
    residual: str,
    expires_at: datetime,
    now: datetime,
    step_id: str = "",
) -> Listener:
    return Listener(
        kind=kind,
        run=run,
        step_id=step_id,
        event_name=event_name,
        expression=residual,
        match_key=matching.key_for_expression(residual) if residual else None,
        trigger_event_id=run.event_id,
        expires_at=expires_at,
        created_at=now,
    )


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
            _listener(ListenerKind.CANCEL, run, rule.event, residual, now + rule.window, now)
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
    listener = _listener(
        ListenerKind.WAIT, run, event_name, residual, now + timeout, now, step_id=step_id
    )
    listener.save(force_insert=True)
    return listener


def _accepts(listener: Listener, keys: set[str], payload: dict[str, Any]) -> bool:
    """The candidate's match key is among the event's, and its expression holds."""
    if listener.match_key is not None and listener.match_key not in keys:
        return False
    return not listener.expression or bool(
        expressions.evaluate(listener.expression, async_=payload)
    )


def deliver(events: Sequence[Event], payloads: Sequence[dict[str, Any]], now: datetime) -> None:
    """Cancel the runs whose cancel rules match, and resume the waits that match, for a batch
    of events (with their payloads) in order, with one indexed query for the whole batch."""
    from django_inngest import cancellation, waits
    from django_inngest.models import CancelSource

    if not events:
        return
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
            if not _accepts(listener, keys[index], payloads[index]):
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
    """One event's candidate listeners: the indexed query ``deliver`` makes, alone (for
    inspection and benchmarks)."""
    found = candidate_listeners({event.name}, set(matching.event_keys(payload)), now)
    return [listener for listener in found if listener.trigger_event_id != event.internal_id]


def matching_listeners(event: Event, now: datetime) -> list[Listener]:
    """The listeners one event would act on: candidates whose expression holds."""
    payload = event.as_payload()
    keys = set(matching.event_keys(payload))
    return [c for c in candidates(event, payload, now) if _accepts(c, keys, payload)]
