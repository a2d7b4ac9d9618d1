"""What we send an SDK app: the call request body, the memos inside it, and step-ID hashes.

The SDK validates the body with pydantic in *strict* mode (``ts`` must be an int, ``use_api`` a
bool...) and answers 500 on any mismatch, so the builders here check types before sending rather
than let a run fail on the far side. Parsing what the SDK answers is in ``responses``.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from django_inngest.sdk.errors import SdkProtocolError

#: JSON as Python holds it; the SDK's memo model is ``object``.
JSON = Any

#: The ``stepId`` that means "no step targeted": discovery, or run the next new step at once.
UNTARGETED_STEP_ID: Final = "step"
#: ``version`` in the body; inngest-py ignores it, the TS SDK reads it. Go sends the SDK's
#: ``x-inngest-req-version``, which inngest-py 0.5 reports as 2.
REQUEST_VERSION: Final = 2
#: Memo of an invoke whose child did not finish in time (Go ``execution.go``, same strings).
INVOKE_TIMEOUT_ERROR_NAME: Final = "InngestInvokeTimeoutError"
INVOKE_TIMEOUT_ERROR_MESSAGE: Final = "Timed out waiting for invoked function to complete"

ServerKind = Literal["cloud", "dev"]
_HASHED_STEP_ID = re.compile(r"^[0-9a-f]{40}$")


# --- step IDs -------------------------------------------------------------------------------


def hash_step_id(user_id: str, occurrence: int = 0) -> str:
    """The ID the SDK reports for the ``occurrence``-th use (0 = first) of ``user_id`` in a run:
    ``sha1(user_id)``, then ``sha1("<user_id>:<n>")`` for repeats. Memos are keyed by it."""
    if occurrence < 0:
        raise SdkProtocolError("occurrence", f"must be at least 0, got {occurrence}")
    source = user_id if occurrence == 0 else f"{user_id}:{occurrence}"
    return hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()


class StepIdCounter:
    """Hashes user step IDs in call order, counting repeats as the SDK does within one request."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def next(self, user_id: str) -> str:
        occurrence = self._seen.get(user_id, 0)
        self._seen[user_id] = occurrence + 1
        return hash_step_id(user_id, occurrence)


# --- memos ----------------------------------------------------------------------------------
# The SDK parses each memo with a strict model that forbids extra keys, and treats anything that
# fails to parse as *data*. So an error memo with one stray key, or a non-string message,
# reaches user code as a successful value. These builders produce exactly the accepted shapes.


def memo_data(value: JSON) -> dict[str, JSON]:
    """A ``step.run``/``send_event`` result, or an invoked child's output. Always wrapped, or an
    output that happens to look like ``{"data": x}`` would be unwrapped by the SDK."""
    return {"data": value}


def memo_error(
    name: object, message: object, stack: object = None, *, field: str = "error"
) -> dict[str, JSON]:
    """A step that failed for good (or an invoke whose child failed). In user code the SDK
    raises ``inngest.StepError`` with this name, message and stack."""
    if not isinstance(name, str) or not name:
        raise SdkProtocolError(f"{field}.name", f"must be a non-empty string, got {name!r}")
    if not isinstance(message, str):
        raise SdkProtocolError(f"{field}.message", f"must be a string, got {message!r}")
    if stack is not None and not isinstance(stack, str):
        raise SdkProtocolError(f"{field}.stack", f"must be a string or None, got {stack!r}")
    error: dict[str, JSON] = {"name": name, "message": message}
    if stack is not None:
        error["stack"] = stack
    return {"error": error}


def memo_sleep_woken() -> JSON:
    """A sleep that has ended: ``null``."""
    return None


def memo_wait_timed_out() -> JSON:
    """A ``wait_for_event`` nobody answered in time: ``null`` (user code gets ``None``)."""
    return None


def memo_wait_matched(event: Mapping[str, JSON]) -> dict[str, JSON]:
    """The event that satisfied a ``wait_for_event``, *unwrapped*. The SDK rebuilds an
    ``inngest.Event`` from it, strictly: ``ts`` must be an int and ``id`` a string."""
    return event_payload(event, field="event")


def memo_invoke_finished(output: JSON) -> dict[str, JSON]:
    """An invoked function's return value."""
    return memo_data(output)


def memo_invoke_timed_out() -> dict[str, JSON]:
    """An invoke whose child did not finish before ``timeout``; user code gets a StepError."""
    return memo_error(INVOKE_TIMEOUT_ERROR_NAME, INVOKE_TIMEOUT_ERROR_MESSAGE)


def normalise_memo(value: JSON, *, field: str) -> JSON:
    """``value`` if the SDK will read it as intended (an event memo normalised), else
    ``SdkProtocolError``: refuses the memos the SDK would silently misread (see above).

    ``null``, exactly ``{"data": x}``, exactly ``{"error": {name, message[, stack]}}``, or an
    event (a dict with a ``name``, checked as strictly as the SDK's ``Event`` model).
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SdkProtocolError(field, f"must be a memo dict or null, got {type(value).__name__}")
    keys = set(value)
    if keys == {"data"}:
        return value
    if keys == {"error"}:
        error = value["error"]
        if not isinstance(error, dict):
            raise SdkProtocolError(f"{field}.error", "must be an object")
        extra = set(error) - {"name", "message", "stack"}
        if extra:
            # The SDK would ignore them, but a typo here usually means a missing "message".
            raise SdkProtocolError(f"{field}.error", f"has unexpected keys {sorted(extra)}")
        return memo_error(
            error.get("name"), error.get("message"), error.get("stack"), field=f"{field}.error"
        )
    if keys == {"data", "error"}:
        raise SdkProtocolError(field, "has both 'data' and 'error'; a memo holds exactly one")
    if "name" not in value:
        raise SdkProtocolError(
            field,
            "is neither {'data': ...}, {'error': {...}} nor an event; the SDK would hand it "
            "to user code as data",
        )
    return event_payload(value, field=field)


# --- events ---------------------------------------------------------------------------------


def event_payload(event: Mapping[str, JSON], *, field: str = "event") -> dict[str, JSON]:
    """``event`` in the shape inngest-py's strict ``Event`` model accepts.

    ``name`` a non-empty string; ``data`` an object (``None`` becomes ``{}``); ``id`` a string;
    ``ts`` an int in milliseconds (an integral float is accepted, since JCS writes ``1.0`` as
    ``1`` anyway; ``1.5`` would fail in the SDK). Other keys (``user``, ``v``) pass through.
    """
    if not isinstance(event, Mapping):
        raise SdkProtocolError(field, f"must be an object, got {type(event).__name__}")
    payload = dict(event)
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise SdkProtocolError(f"{field}.name", f"must be a non-empty string, got {name!r}")
    data = payload.get("data")
    if data is None:
        payload["data"] = {}
    elif not isinstance(data, Mapping):
        raise SdkProtocolError(f"{field}.data", f"must be an object, got {type(data).__name__}")
    event_id = payload.setdefault("id", "")
    if not isinstance(event_id, str):
        raise SdkProtocolError(f"{field}.id", f"must be a string, got {event_id!r}")
    ts = payload.setdefault("ts", 0)
    if isinstance(ts, float) and ts.is_integer():
        payload["ts"] = ts = int(ts)
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise SdkProtocolError(f"{field}.ts", f"must be an integer (milliseconds), got {ts!r}")
    return payload


# --- the call request -----------------------------------------------------------------------


@dataclass(frozen=True)
class CallContext:
    """``ctx`` of a call request.

    ``attempt`` is zero-based and counts retries *of this request* (this step, or this
    discovery), resetting for each new step. With ``max_attempts`` set the SDK itself reports
    ``StepFailed`` instead of ``StepError`` on the last attempt. ``stack`` lists memoized step
    IDs in completion order (inngest-py ignores the order).
    """

    run_id: str
    attempt: int = 0
    max_attempts: int | None = None
    disable_immediate_execution: bool = False
    use_api: bool = False
    stack: tuple[str, ...] = ()
    current: int | None = None

    def to_payload(self) -> dict[str, JSON]:
        if not isinstance(self.run_id, str) or not self.run_id:
            raise SdkProtocolError("ctx.run_id", "must be a non-empty string")
        _require_int(self.attempt, "ctx.attempt", minimum=0)
        if self.max_attempts is not None:
            _require_int(self.max_attempts, "ctx.max_attempts", minimum=1)
        for name in ("disable_immediate_execution", "use_api"):
            if not isinstance(getattr(self, name), bool):
                raise SdkProtocolError(f"ctx.{name}", "must be a bool")
        for index, step_id in enumerate(self.stack):
            _require_hashed_id(step_id, f"ctx.stack.stack[{index}]")
        ctx: dict[str, JSON] = {
            "run_id": self.run_id,
            "attempt": self.attempt,
            "disable_immediate_execution": self.disable_immediate_execution,
            "use_api": self.use_api,
            "stack": {
                "stack": list(self.stack),
                "current": len(self.stack) if self.current is None else self.current,
            },
        }
        if self.max_attempts is not None:
            ctx["max_attempts"] = self.max_attempts
        return ctx


@dataclass(frozen=True)
class CallRequest:
    """One POST to an SDK app: run the function with these memos, or one targeted step.

    ``steps`` maps hashed step IDs to memos built with the ``memo_*`` helpers. ``events`` is the
    whole batch; it defaults to ``[event]`` because inngest-py answers 500 "events not in
    request" without it. With ``ctx.use_api`` the SDK fetches events and memos from
    ``/v0/runs/<id>/batch|actions`` instead, so both are sent empty.
    """

    event: Mapping[str, JSON]
    ctx: CallContext
    steps: Mapping[str, JSON] = field(default_factory=dict)
    events: Sequence[Mapping[str, JSON]] | None = None
    version: int = REQUEST_VERSION

    def to_payload(self) -> dict[str, JSON]:
        """The JSON body, checked; sign its JCS form (``signing.sign_payload``)."""
        event = event_payload(self.event)
        events = (
            [event]
            if self.events is None
            else [event_payload(e, field=f"events[{i}]") for i, e in enumerate(self.events)]
        )
        steps: dict[str, JSON] = {}
        for step_id, memo in self.steps.items():
            _require_hashed_id(step_id, f"steps[{step_id!r}]")
            steps[step_id] = normalise_memo(memo, field=f"steps[{step_id!r}]")
        if self.ctx.use_api:
            events, steps = [], {}
        return {
            "event": event,
            "events": events,
            "steps": steps,
            # inngest-py reads only this copy of use_api, and answers 500 when it is missing.
            "use_api": self.ctx.use_api,
            "ctx": self.ctx.to_payload(),
            "version": self.version,
        }


def call_url(registered_url: str, target_step_id: str | None = None) -> str:
    """The URL to POST: the function's registered ``runtime.url`` with ``stepId`` set to the
    hashed step to run, or to ``step`` (none targeted). Other query parameters are kept."""
    parts = urllib.parse.urlsplit(registered_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SdkProtocolError("url", f"must be an absolute http(s) URL, got {registered_url!r}")
    if target_step_id is not None and target_step_id != UNTARGETED_STEP_ID:
        _require_hashed_id(target_step_id, "stepId")
    query = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if key != "stepId"
    ]
    query.append(("stepId", target_step_id or UNTARGETED_STEP_ID))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def call_headers(
    signature: str,
    *,
    run_id: str,
    server_kind: ServerKind = "cloud",
    request_id: str | None = None,
) -> dict[str, str]:
    """Headers for a call request. The SDK needs only the signature (in cloud mode); it echoes
    ``X-Inngest-Server-Kind`` and exposes ``x-request-id`` as ``ctx.request_id``."""
    headers = {
        "Content-Type": "application/json",
        "X-Inngest-Signature": signature,
        "X-Inngest-Server-Kind": server_kind,
        "X-Run-ID": run_id,
    }
    if request_id:
        headers["X-Request-ID"] = request_id
    return headers


def _require_int(value: object, field: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SdkProtocolError(field, f"must be an integer >= {minimum}, got {value!r}")


def _require_hashed_id(value: object, field: str) -> None:
    if not isinstance(value, str) or not _HASHED_STEP_ID.match(value):
        raise SdkProtocolError(field, "must be a hashed step ID (40 lowercase hex digits)")
