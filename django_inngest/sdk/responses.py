"""What an SDK app answers to a call request, parsed into typed outcomes.

| status | outcome |
|---|---|
| 200 (any 2xx but 201/206) | ``Completed(output)`` |
| 206 | ``StepsReported(ops, no_retry)``: one op, or one per parallel branch |
| 201 | a streamed answer (Flask/FastAPI with ``INNGEST_STREAMING=force``): unwrapped, re-parsed |
| 401 | ``Unauthorized``: our signature was refused (the SDK omits its usual headers here) |
| other | ``FunctionError``: retriable unless ``X-Inngest-No-Retry: true``; ``Retry-After`` parsed |
| no ``x-inngest-sdk`` header | ``NotFromSdk``: a proxy or a wrong URL answered; always retriable |
| from the SDK but unreadable | ``InvalidResponse``: retriable, with the field at fault |

Op objects follow inngest-py 0.5 (``StepInfo`` + ``data``/``error``); the TS SDK's variants the
Go server accepts (``opts.duration`` for sleeps, ``opts.event`` for waits) are read too.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from django_inngest.sdk._durations import parse_go_duration
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.wire import JSON, memo_data, memo_error

SDK_HEADER = "x-inngest-sdk"
SDK_HANDLED_HEADER = "x-inngest-sdk-handled"
NO_RETRY_HEADER = "x-inngest-no-retry"
RETRY_AFTER_HEADER = "retry-after"
#: On every answer inngest-py names its own mode here ("cloud" or "dev"), despite the name.
APP_MODE_HEADER = "x-inngest-expected-server-kind"
_EXCERPT = 500


@dataclass(frozen=True)
class SdkError:
    """An error as the SDK reports it: ``{name, message, stack, code}``."""

    name: str
    message: str
    stack: str | None = None
    code: str | None = None

    @classmethod
    def from_json(cls, value: JSON) -> SdkError:
        """Tolerant: whatever the SDK sent becomes a readable error, never an exception."""
        if not isinstance(value, dict):
            return cls(name="Error", message=_text(value))
        name = value.get("name")
        message = value.get("message")
        stack = value.get("stack")
        code = value.get("code")
        return cls(
            name=name if isinstance(name, str) and name else "Error",
            message=message if isinstance(message, str) else _text(message),
            stack=stack if isinstance(stack, str) else None,
            code=code if isinstance(code, str) else None,
        )

    def to_memo(self) -> dict[str, JSON]:
        """The memo for a step that failed with this error (``code`` is not part of it)."""
        return memo_error(self.name, self.message, self.stack)


# --- ops (elements of a 206 array) ---------------------------------------------------------


@dataclass(frozen=True)
class StepRun:
    """A step ran and returned ``data``; memoize ``{"data": data}`` under ``id``."""

    id: str
    display_name: str
    data: JSON

    def to_memo(self) -> dict[str, JSON]:
        return memo_data(self.data)


@dataclass(frozen=True)
class StepError:
    """A step raised and attempts remain: retry the same request with ``attempt + 1``."""

    id: str
    display_name: str
    error: SdkError


@dataclass(frozen=True)
class StepFailed:
    """A step raised on its last attempt: memoize ``error.to_memo()``, then discover."""

    id: str
    display_name: str
    error: SdkError


@dataclass(frozen=True)
class StepPlanned:
    """A step to run in its own request (``stepId=<id>``), as in ``group.parallel``."""

    id: str
    display_name: str
    parallel_mode: Literal["wait", "race"]


@dataclass(frozen=True)
class Sleep:
    """Pause until ``until`` (aware, UTC), then memoize ``null``."""

    id: str
    display_name: str
    until: datetime


@dataclass(frozen=True)
class WaitForEvent:
    """Wait for ``event`` matching ``if_exp`` (CEL over ``event``/``async``) for ``timeout``."""

    id: str
    display_name: str
    event: str
    if_exp: str | None
    timeout: timedelta


@dataclass(frozen=True)
class InvokeFunction:
    """Start ``function_id`` (``<app id>-<fn id>``) with ``data`` and wait for its result."""

    id: str
    display_name: str
    function_id: str
    data: JSON
    version: str | None
    timeout: timedelta | None


@dataclass(frozen=True)
class Unsupported:
    """An opcode we do not run (``AIGateway``, TS-only ops): fail the run, naming ``op``."""

    id: str
    display_name: str
    op: str
    raw: dict[str, JSON]


Op = (
    StepRun
    | StepError
    | StepFailed
    | StepPlanned
    | Sleep
    | WaitForEvent
    | InvokeFunction
    | Unsupported
)


# --- outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completed:
    output: JSON


@dataclass(frozen=True)
class StepsReported:
    """A 206. ``no_retry`` means a reported ``StepError`` must not be retried (nested steps)."""

    ops: tuple[Op, ...]
    no_retry: bool = False


@dataclass(frozen=True)
class FunctionError:
    """The function raised (or the SDK refused the request) outside any step."""

    status: int
    error: SdkError
    retriable: bool
    retry_at: datetime | None = None


@dataclass(frozen=True)
class NotFromSdk:
    """Something other than the SDK answered (no ``x-inngest-sdk`` header): never a result."""

    status: int
    body_excerpt: str


@dataclass(frozen=True)
class Unauthorized:
    """401: the app did not accept our signature (keys differ, or it runs in another mode)."""

    message: str
    from_sdk: bool


@dataclass(frozen=True)
class InvalidResponse:
    """The SDK answered something the protocol does not allow; ``reason`` names the field."""

    status: int
    reason: str


CallOutcome = (
    Completed | StepsReported | FunctionError | NotFromSdk | Unauthorized | InvalidResponse
)


def parse_call_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime | None = None,
) -> CallOutcome:
    """The outcome of one call request; ``now`` (aware) anchors durations and ``Retry-After``."""
    current = now or datetime.now(UTC)
    lowered = {key.lower(): value for key, value in headers.items()}
    if status == 401:
        return Unauthorized(
            message=_error_message(body),
            from_sdk=SDK_HEADER in lowered or SDK_HANDLED_HEADER in lowered,
        )
    if SDK_HEADER not in lowered:
        return NotFromSdk(status=status, body_excerpt=_excerpt(body))
    if status == 201:
        return _parse_streamed(lowered, body, current)
    if status == 206:
        try:
            ops = _parse_ops(_load_json(body), current)
        except SdkProtocolError as invalid:
            return InvalidResponse(status=status, reason=str(invalid))
        return StepsReported(ops=ops, no_retry=lowered.get(NO_RETRY_HEADER) == "true")
    if 200 <= status < 300:
        try:
            return Completed(output=_load_json(body) if body.strip() else None)
        except SdkProtocolError as invalid:
            return InvalidResponse(status=status, reason=str(invalid))
    try:
        error = SdkError.from_json(_load_json(body))
    except SdkProtocolError:
        error = SdkError(name="Error", message=_excerpt(body) or f"HTTP {status}")
    return FunctionError(
        status=status,
        error=error,
        # As Inngest: the header decides when present; without it 4xx and 5xx are retried.
        retriable=lowered.get(NO_RETRY_HEADER) != "true",
        retry_at=parse_retry_after(lowered.get(RETRY_AFTER_HEADER), now=current),
    )


def app_mode(headers: Mapping[str, str]) -> str | None:
    """The mode the answering app runs in, from its response headers: ``"cloud"``, ``"dev"`` or
    None (not said). A ``dev`` app checks no signatures, so it runs anyone's requests: a server
    in cloud mode should refuse to drive it (or at least say so loudly)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    return lowered.get(APP_MODE_HEADER)


def parse_retry_after(value: str | None, *, now: datetime) -> datetime | None:
    """``Retry-After`` as an aware time: seconds, ISO-8601 (inngest-py: ``...T02:23:10.068Z``)
    or an HTTP date. Unreadable values are ignored (normal backoff applies)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return now + timedelta(seconds=int(text))
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        pass
    try:
        return _aware(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError):
        return None


def _parse_streamed(headers: dict[str, str], body: bytes, now: datetime) -> CallOutcome:
    # Keep-alive spaces, then {"body": "<json string>", "headers": {...}, "status": N}.
    try:
        envelope = _load_json(body)
    except SdkProtocolError as error:
        return InvalidResponse(status=201, reason=f"streamed {error}")
    inner_status = envelope.get("status") if isinstance(envelope, dict) else None
    if isinstance(inner_status, bool) or not isinstance(inner_status, int) or inner_status == 201:
        return InvalidResponse(status=201, reason="streamed body: 'status' must be a final code")
    inner_body = envelope.get("body")
    raw = inner_body if isinstance(inner_body, str) else json.dumps(inner_body)
    inner_headers = envelope.get("headers")
    merged = dict(headers)
    if isinstance(inner_headers, dict):
        merged.update({str(k).lower(): str(v) for k, v in inner_headers.items()})
    return parse_call_response(inner_status, merged, raw.encode("utf-8"), now=now)


def _parse_ops(value: JSON, now: datetime) -> tuple[Op, ...]:
    if not isinstance(value, list):
        raise SdkProtocolError("body", "a 206 must hold a JSON array of ops")
    return tuple(_parse_op(item, f"ops[{index}]", now) for index, item in enumerate(value))


def _parse_op(raw: JSON, where: str, now: datetime) -> Op:
    if not isinstance(raw, dict):
        raise SdkProtocolError(where, "must be an object")
    op_id = raw.get("id")
    if not isinstance(op_id, str) or not op_id:
        raise SdkProtocolError(f"{where}.id", "must be a non-empty string")
    op = raw.get("op")
    if not isinstance(op, str):
        raise SdkProtocolError(f"{where}.op", "must be a string")
    name = raw.get("name") if isinstance(raw.get("name"), str) else ""
    display = raw.get("displayName")
    # Old SDKs send no displayName; Go falls back to the deprecated name too.
    display_name = display if isinstance(display, str) and display else name or op_id
    opts = raw.get("opts")
    if opts is not None and not isinstance(opts, dict):
        raise SdkProtocolError(f"{where}.opts", "must be an object or null")
    options: dict[str, Any] = opts or {}
    if op == "StepRun":
        return StepRun(id=op_id, display_name=display_name, data=raw.get("data"))
    if op in ("StepError", "StepFailed"):
        error = SdkError.from_json(raw.get("error"))
        kind = StepError if op == "StepError" else StepFailed
        return kind(id=op_id, display_name=display_name, error=error)
    if op == "StepPlanned":
        mode: Literal["wait", "race"] = "race" if options.get("parallelMode") == "race" else "wait"
        return StepPlanned(id=op_id, display_name=display_name, parallel_mode=mode)
    if op == "Sleep":
        until = _sleep_until(options.get("duration") or name, f"{where}.name", now)
        return Sleep(id=op_id, display_name=display_name, until=until)
    if op == "WaitForEvent":
        event = options.get("event") or name
        if not isinstance(event, str) or not event:
            raise SdkProtocolError(f"{where}.name", "must name the event to wait for")
        if_exp = options.get("if")
        if if_exp is not None and not isinstance(if_exp, str):
            raise SdkProtocolError(f"{where}.opts.if", "must be a string or null")
        timeout = parse_go_duration(options.get("timeout"), field=f"{where}.opts.timeout")
        return WaitForEvent(
            id=op_id, display_name=display_name, event=event, if_exp=if_exp, timeout=timeout
        )
    if op == "InvokeFunction":
        return _invoke(op_id, display_name, options, where)
    return Unsupported(id=op_id, display_name=display_name, op=op, raw=raw)


def _invoke(op_id: str, display_name: str, options: dict[str, Any], where: str) -> InvokeFunction:
    function_id = options.get("function_id")
    if not isinstance(function_id, str) or not function_id:
        raise SdkProtocolError(f"{where}.opts.function_id", "must be a non-empty string")
    payload = options.get("payload") or {}
    if not isinstance(payload, dict):
        raise SdkProtocolError(f"{where}.opts.payload", "must be an object")
    data = payload.get("data")
    if data is not None and not isinstance(data, dict):
        raise SdkProtocolError(f"{where}.opts.payload.data", "must be an object or null")
    version = payload.get("v")
    if version is not None and not isinstance(version, str):
        raise SdkProtocolError(f"{where}.opts.payload.v", "must be a string or null")
    timeout_text = options.get("timeout")
    timeout = (
        None
        if timeout_text is None
        else parse_go_duration(timeout_text, field=f"{where}.opts.timeout")
    )
    return InvokeFunction(
        id=op_id,
        display_name=display_name,
        function_id=function_id,
        data=data,
        version=version,
        timeout=timeout,
    )


def _sleep_until(value: object, field: str, now: datetime) -> datetime:
    # As Go's SleepDuration: a value of 10+ characters that parses as a date is the wake-up
    # time (inngest-py sends ISO-8601 UTC in `name`); anything else is a duration from now.
    if isinstance(value, str) and len(value) >= 10:
        try:
            return max(_aware(datetime.fromisoformat(value)), now)
        except ValueError:
            pass
    if value in (None, ""):
        raise SdkProtocolError(field, "a sleep needs a wake-up time or a duration")
    return now + parse_go_duration(value, field=field)


def _aware(moment: datetime) -> datetime:
    # The SDK writes UTC with a "Z"; a naive time can only mean UTC here too.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _load_json(body: bytes) -> JSON:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise SdkProtocolError("body", f"is not JSON: {_excerpt(body)!r}") from error


def _error_message(body: bytes) -> str:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return _excerpt(body)
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return str(value["message"])
    return _excerpt(body)


def _excerpt(body: bytes) -> str:
    return body[:_EXCERPT].decode("utf-8", errors="replace").strip()


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
