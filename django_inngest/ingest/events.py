"""Events in: validate, store, dedupe, start triggered runs and feed pending listeners.

``send_events`` is the one entry point shared by ``client.send_sync``, the HTTP event API,
``step.send_event`` and the engine's system events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from django_inngest import database
from django_inngest.conf import settings
from django_inngest.function import Function
from django_inngest.ids import new_ulid, seeded_ulid
from django_inngest.ingest import delivery, runs
from django_inngest.ingest.validation import validate_event
from django_inngest.models import DedupeKey, Event, FunctionRun
from django_inngest.sql import insert_rows


def send_events(
    payloads: Sequence[Any],
    *,
    allow_internal: bool = False,
    now: datetime | None = None,
    id_seed: tuple[int, bytes] | None = None,
    dedupe: bool = True,
    system: bool = False,
) -> list[str]:
    """Validate (all or nothing), store and dispatch events; returns internal IDs in order.

    Runs the triggered functions only once the surrounding transaction commits; events rolled
    back with it trigger nothing. With ``id_seed`` (Inngest's ``x-inngest-event-id-seed``) the
    IDs are derived from it, and an event whose ID is already stored is a retried request: it
    is not stored or dispatched again.
    """
    now = now or timezone.now()
    received_ms = int(now.timestamp() * 1000)
    fields = [
        validate_event(
            p,
            received_ms=received_ms,
            position=i if len(payloads) > 1 else None,
            allow_internal=allow_internal or system,
            system=system,
        )
        for i, p in enumerate(payloads)
    ]
    ids = _seeded_ids(id_seed, len(fields)) if id_seed is not None else None
    # No savepoint when nested (a step's send, a system event): an error aborts the caller too.
    with database.atomic(savepoint=False):
        retried = (
            set(Event.objects.filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()
        )
        events = store_events(fields, now, ids=ids, skip=retried, dedupe=dedupe)
        live = [e for e in events if not e.is_duplicate and e.pk not in retried]
        payloads = [event.as_payload() for event in live]
        runs.start_triggered_runs(live, payloads, now, delivery.supersede)
        delivery.deliver(live, payloads, now)
    return [e.internal_id for e in events]


def _seeded_ids(seed: tuple[int, bytes], count: int) -> list[str]:
    # Inngest increments the seed's entropy by the event's index in the request.
    millis, entropy = seed
    base = int.from_bytes(entropy, "big")
    return [seeded_ulid(millis, base + index) for index in range(count)]


def store_events(
    fields: list[dict[str, Any]],
    now: datetime,
    *,
    ids: list[str] | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
    dedupe: bool = True,
) -> list[Event]:
    """Build and insert Event rows; rows whose ID is in ``skip`` exist already and are not
    inserted again (a retried request). Call inside a transaction."""
    now_ms = int(now.timestamp() * 1000)
    events = [
        Event(internal_id=ids[index] if ids else new_ulid(now_ms), received_at=now, **f)
        for index, f in enumerate(fields)
    ]
    fresh = [e for e in events if e.pk not in skip]
    for event in fresh if dedupe else ():
        if event.external_id:
            event.is_duplicate = not _claim_dedupe_key(event, now)
    insert_rows(fresh)
    return events


def _claim_dedupe_key(event: Event, now: datetime) -> bool:
    """True if this event is the first with its sender ID within the window."""
    expires_at = now + timedelta(seconds=settings.DEDUPE_WINDOW_SECONDS)
    try:
        # A savepoint, so that a conflict does not abort the caller's transaction.
        with database.atomic():
            DedupeKey.objects.create(
                key=event.external_id, event_id=event.pk, expires_at=expires_at
            )
        return True
    except IntegrityError:
        # Seen before. Still inside the window: a duplicate. Expired: this event takes it over;
        # the conditional update is atomic, so only one concurrent sender can.
        return bool(
            DedupeKey.objects.filter(key=event.external_id, expires_at__lte=now).update(
                event_id=event.pk, expires_at=expires_at
            )
        )


def start_invoked_run(
    target: Function, payload: dict[str, Any], parent: FunctionRun, step_id: str, now: datetime
) -> FunctionRun:
    """Store ``inngest/function.invoked`` and start ``target`` with it, whatever its triggers
    (``step.invoke``); call inside the parent's transaction."""
    fields = validate_event(payload, received_ms=int(now.timestamp() * 1000), allow_internal=True)
    (event,) = store_events([fields], now)
    return runs.create_run(target, event, now, parent=parent, parent_step_id=step_id)
