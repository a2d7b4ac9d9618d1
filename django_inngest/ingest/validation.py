"""Validating one event's fields as Inngest's event API does."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from django_inngest.conf import settings
from django_inngest.exceptions import EventValidationError

INTERNAL_PREFIX = "inngest/"
#: The widths of the columns each field is stored in (``models.Event``).
MAX_NAME_LENGTH = 255
MAX_ID_LENGTH = 255
MAX_VERSION_LENGTH = 64
#: Inngest's accepted event times (pkg/event ``Validate``): from 1980 to 2100, in ms.
MIN_TS = int(datetime(1980, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_TS = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000)
_UNSTORABLE = "strings must not contain NUL (\\u0000) or unpaired surrogate characters"
#: JSON's escape for NUL, not preceded by an escaped backslash (which would make it literal text).
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def is_internal_name(name: str) -> bool:
    # Inngest lowercases before checking the reserved prefix (pkg/event/inbound_test.go:
    # "INNGEST/function.finished" is refused). Invisible characters in front (spaces, a
    # zero-width space) must not smuggle a reserved name past the check either.
    return _visible_start(name).lower().startswith(INTERNAL_PREFIX)


def _visible_start(name: str) -> str:
    start = 0
    while start < len(name) and (
        name[start].isspace() or unicodedata.category(name[start]) in ("Cc", "Cf")
    ):
        start += 1
    return name[start:]


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
    if name != name.strip():
        # Triggers match names exactly: " app/x" would start nothing, silently.
        raise fail("`name` must not start or end with whitespace")
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
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise fail("`ts` must be an integer of milliseconds since the Unix epoch")
    if not MIN_TS <= ts <= MAX_TS:
        raise fail(
            "`ts` must be between 1980-01-01 and 2100-01-01 "
            f"({MIN_TS} and {MAX_TS} ms since the Unix epoch), got {ts}"
        )
    version = payload.get("v")
    if version is None:
        version = ""
    if not isinstance(version, str):
        raise fail("`v` must be a string")
    if len(version) > MAX_VERSION_LENGTH:
        raise fail(f"`v` is longer than {MAX_VERSION_LENGTH} characters")
    return {
        "name": name,
        "data": data,
        "user": user,
        "external_id": external_id,
        "ts": ts,
        "v": version,
    }
