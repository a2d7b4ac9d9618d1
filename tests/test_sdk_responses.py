"""Parsing SDK answers (django_inngest.sdk.responses) on hand-made responses: the cases a served
inngest-py app does not produce on demand (proxies, streaming, TS-style ops, malformed bodies),
and the Go duration grammar."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_inngest.sdk._durations import parse_go_duration
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.responses import (
    Completed,
    FunctionError,
    InvalidResponse,
    InvokeFunction,
    NotFromSdk,
    SdkError,
    Sleep,
    StepFailed,
    StepsReported,
    Unauthorized,
    Unsupported,
    WaitForEvent,
    parse_call_response,
    parse_retry_after,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SDK = {"X-Inngest-SDK": "inngest-py:v0.5.19"}


def parse(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_call_response(status, {**SDK, **(headers or {})}, raw, now=NOW)


def op(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "a" * 40,
        "displayName": "step",
        "name": "step",
        "op": kind,
        "opts": None,
        **fields,
    }


def test_completion_and_not_from_the_sdk() -> None:
    assert parse(200, {"x": 1}) == Completed(output={"x": 1})
    assert parse(200, None) == Completed(output=None)
    assert parse(204, b"") == Completed(output=None)
    assert parse(200, b"<html>") == InvalidResponse(
        status=200, reason="body: is not JSON: '<html>'"
    )
    # A proxy's answer is never a result, whatever its status.
    proxy_ok = parse_call_response(200, {}, b'{"x": 1}', now=NOW)
    assert proxy_ok == NotFromSdk(status=200, body_excerpt='{"x": 1}')
    gateway = parse_call_response(502, {"Content-Type": "text/html"}, b"<h1>Bad Gateway</h1>")
    assert gateway == NotFromSdk(status=502, body_excerpt="<h1>Bad Gateway</h1>")


def test_unauthorized() -> None:
    sdk_401 = parse_call_response(
        401, {"x-inngest-sdk-handled": "true"}, b'{"message": "Unauthorized"}'
    )
    assert sdk_401 == Unauthorized(message="Unauthorized", from_sdk=True)
    proxy_401 = parse_call_response(401, {}, b"denied")
    assert proxy_401 == Unauthorized(message="denied", from_sdk=False)


def test_function_errors_and_retry_headers() -> None:
    body = {"code": "unknown", "message": "boom", "name": "ValueError", "stack": "tb"}
    retried = parse(500, body)
    assert retried == FunctionError(
        status=500, error=SdkError("ValueError", "boom", "tb", "unknown"), retriable=True
    )
    assert parse(500, body, {"X-Inngest-No-Retry": "true"}).retriable is False
    assert parse(500, body, {"X-Inngest-No-Retry": "false"}).retriable is True
    assert parse(400, body).retriable is True  # as Go: 4xx without the header is retried
    at = parse(500, body, {"Retry-After": "2026-11-30T02:23:10.068Z"}).retry_at
    assert at == datetime(2026, 11, 30, 2, 23, 10, 68000, tzinfo=UTC)
    opaque = parse(503, b"upstream timeout")
    assert opaque.error == SdkError(name="Error", message="upstream timeout")
    assert SdkError.from_json("text") == SdkError(name="Error", message="text")
    assert SdkError.from_json({"name": "", "message": 5}) == SdkError(name="Error", message="5")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", NOW + timedelta(seconds=120)),
        ("2026-11-30T02:23:10.068Z", datetime(2026, 11, 30, 2, 23, 10, 68000, tzinfo=UTC)),
        ("2026-11-30T02:23:10", datetime(2026, 11, 30, 2, 23, 10, tzinfo=UTC)),
        ("Wed, 21 Oct 2026 07:28:00 GMT", datetime(2026, 10, 21, 7, 28, tzinfo=UTC)),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(value: str | None, expected: datetime | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_step_ops() -> None:
    error = {"code": "unknown", "message": "m", "name": "KeyError", "stack": "tb"}
    reported = parse(
        206, [op("StepFailed", error=error, data=None)], {"X-Inngest-No-Retry": "true"}
    )
    assert reported == StepsReported(
        ops=(
            StepFailed(
                id="a" * 40, display_name="step", error=SdkError("KeyError", "m", "tb", "unknown")
            ),
        ),
        no_retry=True,
    )
    # The memo leaves `code` out: exactly {name, message, stack}.
    assert reported.ops[0].error.to_memo() == {
        "error": {"name": "KeyError", "message": "m", "stack": "tb"}
    }
    assert parse(206, []) == StepsReported(ops=())
    legacy = parse(206, [{"id": "b" * 40, "name": "old", "op": "StepRun", "data": 1}])
    assert legacy.ops[0].display_name == "old"  # no displayName: the deprecated name


def test_sleeps_in_every_form_go_accepts() -> None:
    def until(**fields: Any) -> datetime:
        [sleep] = parse(206, [op("Sleep", **fields)]).ops
        assert isinstance(sleep, Sleep)
        return sleep.until

    assert until(name="2026-01-02T00:00:00.000Z") == datetime(2026, 1, 2, tzinfo=UTC)
    assert until(name="2025-01-01T00:00:00Z") == NOW  # in the past: wake at once
    assert until(opts={"duration": "1h30m"}) == NOW + timedelta(minutes=90)  # the TS SDK
    assert until(name="45s") == NOW + timedelta(seconds=45)  # old TS: duration in name
    assert until(name="0") == NOW


def test_waits_and_invokes() -> None:
    [wait] = parse(
        206, [op("WaitForEvent", name="ignored", opts={"event": "app/x", "timeout": "2d"})]
    ).ops
    assert wait == WaitForEvent(
        id="a" * 40, display_name="step", event="app/x", if_exp=None, timeout=timedelta(days=2)
    )
    opts = {"function_id": "app-fn", "payload": {"data": None, "v": "2"}, "timeout": "90s"}
    [invoke] = parse(206, [op("InvokeFunction", opts=opts)]).ops
    assert invoke == InvokeFunction(
        id="a" * 40,
        display_name="step",
        function_id="app-fn",
        data=None,
        version="2",
        timeout=timedelta(seconds=90),
    )
    [ai] = parse(206, [op("AIGateway", opts={"url": "x"})]).ops
    assert isinstance(ai, Unsupported) and ai.op == "AIGateway"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"not": "a list"}, "body: a 206 must hold a JSON array"),
        (["x"], "ops[0]: must be an object"),
        ([op("StepRun", id="")], "ops[0].id"),
        ([op("StepRun", op=3)], "ops[0].op"),
        ([op("StepRun", opts=[1])], "ops[0].opts"),
        ([op("Sleep", name="")], "ops[0].name"),
        ([op("Sleep", name="soonish")], "ops[0].name: is not a duration"),
        ([op("WaitForEvent", name="")], "ops[0].name"),
        ([op("WaitForEvent", opts={})], "ops[0].opts.timeout"),
        ([op("WaitForEvent", opts={"timeout": "1h", "if": 3})], "ops[0].opts.if"),
        ([op("InvokeFunction", opts={})], "ops[0].opts.function_id"),
        (
            [op("InvokeFunction", opts={"function_id": "f", "payload": {"data": [1]}})],
            "ops[0].opts.payload.data",
        ),
        (
            [op("StepRun"), op("InvokeFunction", opts={"function_id": "f", "timeout": "-1s"})],
            "ops[1].opts.timeout",
        ),
    ],
)
def test_malformed_ops_name_the_field(body: Any, reason: str) -> None:
    outcome = parse(206, body)
    assert isinstance(outcome, InvalidResponse) and outcome.status == 206
    assert outcome.reason.startswith(reason), outcome.reason


def test_streamed_answers_are_unwrapped() -> None:
    def streamed(status: int, body: Any, headers: dict[str, str] | None = None) -> bytes:
        envelope = {"body": json.dumps(body), "headers": headers or {}, "status": status}
        return b"     " + json.dumps(envelope).encode()

    assert parse(201, streamed(200, {"ok": 1})) == Completed(output={"ok": 1})
    ops = parse(201, streamed(206, [op("StepRun", data=2)])).ops
    assert [o.data for o in ops] == [2]
    failed = parse(
        201, streamed(500, {"message": "x", "name": "E"}, {"X-Inngest-No-Retry": "true"})
    )
    assert isinstance(failed, FunctionError) and not failed.retriable
    assert isinstance(parse(201, b"   "), InvalidResponse)
    assert isinstance(parse(201, streamed(201, {})), InvalidResponse)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("5m", timedelta(minutes=5)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        (".5s", timedelta(milliseconds=500)),
        ("300ms", timedelta(milliseconds=300)),
        ("1s500ms", timedelta(seconds=1.5)),
        ("10us", timedelta(microseconds=10)),
        ("10µs", timedelta(microseconds=10)),
        ("2000ns", timedelta(microseconds=2)),
        ("+1d", timedelta(days=1)),
        ("1s1h", timedelta(hours=1, seconds=1)),  # Go accepts any order
    ],
)
def test_go_durations(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text, field="timeout") == expected


@pytest.mark.parametrize(
    "text", ["", "5", "m", "-5m", "5 m", "5M", "1y", "1h-5m", "..5s", 5, None, "99999999w"]
)
def test_bad_go_durations_name_the_field(text: Any) -> None:
    with pytest.raises(SdkProtocolError) as caught:
        parse_go_duration(text, field="functions[0].cancel[0].timeout")
    assert caught.value.field == "functions[0].cancel[0].timeout"
