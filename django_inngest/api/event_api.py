"""``POST /e/<event_key>``: Inngest's event API, wire-compatible with the official SDKs.

A plain Django view rather than DRF: it is the hot path, and its request and response shapes are
Inngest's, not the REST API's. Success is ``200 {"ids": [...], "status": 200}`` with one internal
event ID per input event, in order; a rejected request stores nothing and answers
``{"ids": [], "status": <4xx>, "error": "..."}`` (a bad key: ``401 {"status": 401, "error":
"Event key not found"}``, as Inngest).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from django_inngest.api.keys import event_key_is_valid
from django_inngest.api.unavailable import (
    DATABASE_ERRORS,
    MESSAGE,
    RETRY_AFTER_SECONDS,
    already_logged,
    outage,
)
from django_inngest.conf import settings
from django_inngest.exceptions import EventValidationError
from django_inngest.ingest.events import send_events

logger = logging.getLogger(__name__)

#: Cap on a whole request body. Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB by default) is
#: meant for form posts and would refuse ordinary SDK batches, so the body is read from the
#: stream here instead of through ``request.body``. MAX_EVENTS_PER_REQUEST * MAX_EVENT_BYTES
#: (2.5 GB by default) is far too much to buffer, so a fixed 10 MiB applies, raised only when a
#: project allows single events that would not fit in it.
MAX_BODY_BYTES = 10 * 1024 * 1024
#: Bodies are parsed as JSON whatever these say: no header at all, and curl's default for ``-d``
#: (form-encoded), which people use with a JSON body far more often than with real form data.
_JSON_CONTENT_TYPES = ("", "application/json", "text/plain", "application/x-www-form-urlencoded")


class _Rejected(Exception):
    """The request is refused before anything is stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _body_limit() -> int:
    # Twice the event limit leaves room for whitespace the per-event (compact) size ignores.
    return max(MAX_BODY_BYTES, 2 * settings.MAX_EVENT_BYTES)


def _read_body(request: HttpRequest) -> bytes:
    limit = _body_limit()
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise _Rejected(413, f"request body is {declared} bytes, over the limit of {limit} bytes")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise _Rejected(413, f"request body is over the limit of {limit} bytes")
    return body


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; PostgreSQL's jsonb would refuse them at insert time.
    raise ValueError(f"{name} is not valid JSON")


def _parse(body: bytes, content_type: str) -> list[Any]:
    if content_type not in _JSON_CONTENT_TYPES and not content_type.endswith("+json"):
        raise _Rejected(415, f"unsupported content type {content_type!r}: send application/json")
    if not body.strip():
        raise _Rejected(400, "request body is empty: send a JSON event or a JSON array of events")
    try:
        parsed = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise _Rejected(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, oversized integers
        raise _Rejected(400, f"malformed JSON: {exc}") from None
    if isinstance(parsed, dict):
        return [parsed]
    if not isinstance(parsed, list):
        raise _Rejected(
            400,
            f"body must be a JSON event object or an array of them, got {type(parsed).__name__}",
        )
    if not parsed:
        raise _Rejected(400, "no events: the array is empty")
    limit = settings.MAX_EVENTS_PER_REQUEST
    if len(parsed) > limit:
        raise _Rejected(400, f"too many events: {len(parsed)}, the limit is {limit} per request")
    return parsed


#: SDKs send ``"<millis>,<base64 of 10 random bytes>"`` so that a retried request derives the
#: same event IDs, and the retry is recognised instead of stored twice (Inngest's pkg/event/id.go).
ID_SEED_HEADER = "x-inngest-event-id-seed"


def _id_seed(header: str | None) -> tuple[int, bytes] | None:
    if not header:
        return None
    millis, _, entropy = header.partition(",")
    try:
        seed = (int(millis), base64.b64decode(entropy, validate=True))
    except (ValueError, binascii.Error):
        seed = None
    if seed is None or len(seed[1]) != 10 or not 0 <= seed[0] < 2**48:
        raise _Rejected(400, f"{ID_SEED_HEADER} must be '<millis>,<base64 of 10 bytes>'")
    return seed


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"ids": [], "status": status, "error": message}, status=status)


@csrf_exempt  # the event key in the URL is the credential; there is no cookie session to forge
def receive_events(request: HttpRequest, event_key: str) -> JsonResponse:
    """Store one event or a batch, start the functions they trigger, and return their IDs."""
    if request.method != "POST":
        response = _error(405, f"method {request.method} not allowed: POST events to this URL")
        response["Allow"] = "POST"
        return response
    # The key is checked before the body is read, so unauthenticated senders cost nothing.
    if not event_key_is_valid(event_key):
        if not settings.EVENT_KEYS:
            logger.warning("Event API request refused: DJANGO_INNGEST_EVENT_KEYS is empty")
        return JsonResponse({"status": 401, "error": "Event key not found"}, status=401)
    content_type = (request.content_type or "").lower()
    try:
        body = _read_body(request)
        payloads = _parse(body, content_type)
        seed = _id_seed(request.headers.get(ID_SEED_HEADER))
        ids = send_events(payloads, id_seed=seed)
    except _Rejected as exc:
        return _error(exc.status, exc.message)
    except EventValidationError as exc:
        return _error(400, str(exc))
    except DATABASE_ERRORS as exc:
        # Nothing was stored (the transaction did not commit): the sender may retry as is.
        outage.failed(exc, "POST /e/")
        response = already_logged(_error(503, MESSAGE))
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    outage.succeeded()
    return JsonResponse({"ids": ids, "status": 200})
