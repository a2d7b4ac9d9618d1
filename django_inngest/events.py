"""Events in: validate, store, dedupe, start triggered runs and feed pending listeners.

``send_events`` is the one entry point shared by ``client.send_sync``, the HTTP event API,
``step.send_event`` and the engine's system events.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from django_inngest import listeners, runs
from django_inngest.conf import settings
from django_inngest.exceptions import EventValidationError
from django_inngest.ids import new_ulid, seeded_ulid
from django_inngest.models import DedupeKey, Event
from django_inngest.statements import insert_rows

INTERNAL_PREFIX = "inngest/"
MAX_NAME_LENGTH = 255
MAX_ID_LENGTH = 255
MAX_TS = 2**63 - 1  # the BIGINT column
_UNSTORABLE = "strings must not contain NUL (\\u0000) or unpaired surrogate characters"
#: JSON's escape for NUL, not preceded by an escaped backslash (which would make it literal text).
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def is_internal_name(name: str) -> bool:
    # Inngest lowercases before checking the reserved prefix (pkg/event/event.go IsInternal).
    return name.lower().startswith(INTERNAL_PREFIX)


def validate_event(
    payload: Any,
    *,
    received_ms: int,
    position: int | None = None,
    allow_internal: bool = False,
    system: bool = False,
) -> dict[str, Any]:
    """Check one event's fields and return them normalised; raises EventValidationError naming the field.

    ``system`` marks the engine's own ``inngest/function.*`` events, which carry an accepted
    trigger and a step-size output: they are not held to ``MAX_EVENT_BYTES`` (a run must not
    be unable to end because its output is large).
    """
    where = f"event {position}: " if position is not None else ""

    def fail(message: str) -> EventValidationError:
        return EventValidationError(where + message)

    if not isinstance(payload, dict):
        raise fail(f"an event must be a JSON object, got {type(payload).__name__}")
    try:
        encoded = json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        size = len(encoded.encode())
    except UnicodeEncodeError:
        raise fail(_UNSTORABLE) from None
    except (TypeError, ValueError) as exc:
        raise fail(f"event is not valid JSON data: {exc}") from None
    if "\\u0000" in encoded and _ESCAPED_NUL.search(encoded):  # the regex only if needed
        # PostgreSQL's jsonb cannot store NUL; refuse it for every database alike.
        raise fail(_UNSTORABLE)
    if size > settings.MAX_EVENT_BYTES and not system:
        raise fail(f"event is {size} bytes, over the limit of {settings.MAX_EVENT_BYTES} bytes")
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("`name` is required and must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise fail(f"`name` is longer than {MAX_NAME_LENGTH} characters")
    if is_internal_name(name) and not allow_internal:
        raise fail(f"`name` {name!r} uses the reserved 'inngest/' prefix")
    data = payload.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise fail("`data` must be an object")
    if not allow_internal and "_inngest" in data:
        data = {k: v for k, v in data.items() if k != "_inngest"}
    user = payload.get("user")
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise fail("`user` must be an object")
    external_id = payload.get("id")
    if external_id is None:
        external_id = ""
    if not isinstance(external_id, str):
        raise fail("`id` must be a string")
    if len(external_id) > MAX_ID_LENGTH:
        raise fail(f"`id` is longer than {MAX_ID_LENGTH} characters")
    ts = payload.get("ts")
    if ts is None or ts == 0:
        ts = received_ms
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= MAX_TS:
        raise fail("`ts` must be a non-negative integer of milliseconds")
    version = payload.get("v")
    if version is None:
        version = ""
    if not isinstance(version, str):
        raise fail("`v` must be a string")
    return {
        "name": name,
        "data": data,
        "user": user,
        "external_id": external_id,
        "ts": ts,
        "v": version,
    }


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
    with transaction.atomic(savepoint=False):
        retried = (
            set(Event.objects.filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()
        )
        events = store_events(fields, now, ids=ids, skip=retried, dedupe=dedupe)
        live = [e for e in events if not e.is_duplicate and e.pk not in retried]
        payloads = [event.as_payload() for event in live]
        runs.start_triggered_runs(live, payloads, now)
        listeners.deliver(live, payloads, now)
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
        with transaction.atomic():
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


def system_event(
    name: str, data: dict[str, Any], *, event_id: str, ts_ms: int | None = None
) -> dict[str, Any]:
    """An ``inngest/...`` event's payload, for ``send_events(..., system=True)``."""
    return {
        "name": name,
        "data": data,
        "id": event_id,
        "ts": ts_ms if ts_ms is not None else time.time_ns() // 1_000_000,
    }


def send_system_event(
    name: str,
    data: dict[str, Any],
    *,
    event_id: str,
    ts_ms: int | None = None,
) -> str:
    """Emit an ``inngest/...`` event from the engine.

    No dedupe key is claimed: each system event is emitted once by construction (a run ends
    once, under its row lock; ``function.cancelled`` is guarded by the run's outbox flag), and
    the ``inngest/`` prefix keeps senders from reusing these IDs.
    """
    payload = system_event(name, data, event_id=event_id, ts_ms=ts_ms)
    return send_events([payload], system=True, dedupe=False)[0]
