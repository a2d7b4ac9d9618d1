"""The HTTP transport (django_inngest.sdk.transport): keep-alive per thread, timeouts, typed
errors, pinned addresses; and whole runs and a sync over real HTTP against inngest-py served by
a live server."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

from django_inngest.sdk import responses, signing, sync, wire
from django_inngest.sdk.responses import Completed, StepPlanned, StepRun, StepsReported
from django_inngest.sdk.transport import Transport, TransportError
from django_inngest.sdk.url_guard import UrlGuard, UrlRefused
from tests.sdkapp.capture import HANG_UP, Captured, CaptureServer, json_answer
from tests.sdkapp.fixtures import SdkApp
from tests.sdkapp.functions import SIGNING_KEY
from tests.sdkapp.harness import event, fn_id


def echo(request: Captured) -> Any:
    return json_answer(200, {"path": request.path, "body": request.body.decode()})


def test_connections_are_reused_per_thread(capture_server: CaptureServer) -> None:
    capture_server.responders["/"] = echo
    transport = Transport(timeout=5)
    for body in (b"1", b"2"):
        response = transport.request("POST", f"{capture_server.url}/x?y=1", body, {})
        assert response.status == 200
        assert json.loads(response.body) == {"path": "/x?y=1", "body": body.decode()}
        assert response.headers["content-type"] == "application/json"
    other_thread: list[int] = []
    thread = threading.Thread(
        target=lambda: other_thread.append(
            transport.request("POST", f"{capture_server.url}/z", b"3", {}).status
        )
    )
    thread.start()
    thread.join()
    assert other_thread == [200]
    first, second, third = capture_server.requests
    assert first.client_port == second.client_port  # one kept-alive connection
    assert third.client_port != first.client_port  # the other thread had its own
    transport.close()
    transport.request("POST", f"{capture_server.url}/x", b"4", {})
    assert capture_server.requests[-1].client_port != first.client_port


def test_a_connection_the_server_closed_while_idle_is_replaced(
    capture_server: CaptureServer,
) -> None:
    capture_server.responders["/"] = lambda _: (200, {HANG_UP: "1"}, b"{}")
    transport = Transport(timeout=5)
    assert transport.request("POST", f"{capture_server.url}/a", b"", {}).status == 200
    time.sleep(0.05)  # let the server's close reach us, as after an idle timeout
    assert transport.request("POST", f"{capture_server.url}/b", b"", {}).status == 200
    first, second = capture_server.requests
    assert first.client_port != second.client_port


def test_timeouts_refusals_and_oversized_bodies_are_transport_errors(
    capture_server: CaptureServer,
) -> None:
    def slow(_: Captured) -> Any:
        time.sleep(1.0)
        return json_answer(200, {})

    capture_server.responders["/slow"] = slow
    capture_server.responders["/big"] = lambda _: (200, {}, b"x" * 2048)
    transport = Transport(timeout=0.2, max_response_bytes=1024)
    with pytest.raises(TransportError) as timed_out:
        transport.request("POST", f"{capture_server.url}/slow", b"", {})
    assert timed_out.value.timed_out and timed_out.value.url.endswith("/slow")
    with pytest.raises(TransportError, match="larger than 1024 bytes"):
        transport.request("POST", f"{capture_server.url}/big", b"", {})
    assert transport.request("POST", f"{capture_server.url}/ok", b"", {}).status == 404

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(TransportError, match="ConnectionRefusedError") as refused:
        transport.request("POST", f"http://127.0.0.1:{port}/", b"", {})
    assert not refused.value.timed_out
    for url in ("ftp://127.0.0.1/", "/relative", "http://127.0.0.1:notaport/"):
        with pytest.raises(TransportError):
            transport.request("POST", url, b"", {})


def test_connections_go_to_the_vetted_address(capture_server: CaptureServer) -> None:
    capture_server.responders["/"] = echo
    port = int(capture_server.url.rsplit(":", 1)[1])
    guard = UrlGuard(
        [f"sdk.example.test:{port}"], ["127.0.0.0/8"], resolver=lambda h, p: ["127.0.0.1"]
    )
    transport = Transport(timeout=5, addresses_for=guard.addresses_for)
    # The name does not resolve anywhere real: the connection can only have used the guard.
    response = transport.request("POST", f"http://sdk.example.test:{port}/pinned", b"", {})
    assert response.status == 200
    assert capture_server.requests[-1].headers["host"] == f"sdk.example.test:{port}"
    strict = Transport(
        timeout=5,
        addresses_for=UrlGuard(
            [f"sdk.example.test:{port}"], resolver=lambda h, p: ["127.0.0.1"]
        ).addresses_for,
    )
    with pytest.raises(UrlRefused, match="non-public"):
        strict.request("POST", f"http://sdk.example.test:{port}/pinned", b"", {})


# --- over real HTTP, against inngest-py on a live server --------------------------------------


def run_over_http(
    transport: Transport, base: str, function: str, trigger: dict[str, Any]
) -> tuple[Any, list[str]]:
    """A minimal engine loop: POST, store each op's memo, POST again, until the run ends."""
    registered = f"{base}/api/inngest?fnId={fn_id(function)}&stepId=step"
    steps: dict[str, Any] = {}
    seen: list[str] = []

    def call(step_id: str | None = None, force_plan: bool = False) -> responses.CallOutcome:
        request = wire.CallRequest(
            event=trigger,
            steps=steps,
            ctx=wire.CallContext(
                run_id="01JRUN", stack=tuple(steps), disable_immediate_execution=force_plan
            ),
        )
        answer = transport.post_call(
            wire.call_url(registered, step_id), request, SIGNING_KEY, request_id="req-1"
        )
        assert signing.verify_response(
            answer.body, answer.headers.get("x-inngest-signature"), [SIGNING_KEY]
        )
        return responses.parse_call_response(answer.status, answer.headers, answer.body)

    for _ in range(20):
        outcome = call()
        if not isinstance(outcome, StepsReported):
            return outcome, seen
        for op in outcome.ops:
            seen.append(type(op).__name__)
            if isinstance(op, StepPlanned):
                [ran] = call(op.id, force_plan=True).ops  # type: ignore[union-attr]
                assert isinstance(ran, StepRun)
                steps[op.id] = ran.to_memo()
            elif isinstance(op, StepRun):
                steps[op.id] = op.to_memo()
            elif isinstance(op, responses.WaitForEvent):
                steps[op.id] = wire.memo_wait_matched(
                    {"name": op.event, "data": {"by": "bo"}, "id": "E", "ts": 1}
                )
            elif isinstance(op, responses.InvokeFunction):
                steps[op.id] = wire.memo_invoke_finished({"doubled": 4})
            else:
                steps[op.id] = wire.memo_sleep_woken()
    raise AssertionError(f"no end after {seen}")


@pytest.mark.django_db(transaction=True)
def test_a_whole_run_over_http(
    sdk_app: SdkApp, live_server: Any, capture_server: CaptureServer
) -> None:
    transport = Transport(timeout=30)
    outcome, seen = run_over_http(
        transport, live_server.url, "flow", event("sdk/flow", {"go": True})
    )
    assert seen == [
        "StepRun",
        "StepRun",
        "Sleep",
        "Sleep",
        "WaitForEvent",
        "InvokeFunction",
        "StepRun",
        "StepPlanned",
        "StepPlanned",
    ]
    assert outcome == Completed(
        output={
            "first": {"n": 1},
            "second": {"n": 2},
            "approved_by": "bo",
            "doubled": {"doubled": 4},
            "sent": ["evt-0"],
            "parallel": ["one", "two"],
        }
    )
    # A forged signature over real HTTP is refused as well.
    forged = transport.request(
        "POST",
        f"{live_server.url}/api/inngest?fnId={fn_id('child')}&stepId=step",
        b"{}",
        {"Content-Type": "application/json", "X-Inngest-Signature": "t=1&s=" + "0" * 64},
    )
    assert isinstance(
        responses.parse_call_response(forged.status, forged.headers, forged.body),
        responses.Unauthorized,
    )


@pytest.mark.django_db(transaction=True)
def test_a_sync_over_http(sdk_app: SdkApp, live_server: Any, capture_server: CaptureServer) -> None:
    transport = Transport(timeout=30)
    serve_url = f"{live_server.url}/api/inngest"
    answer = transport.put_sync(sync.build_sync_put(serve_url, SIGNING_KEY, deploy_id="d-1"))
    assert sync.interpret_sync_response(
        answer.status, answer.headers, answer.body
    ) == sync.SyncResult(ok=True, modified=True)
    [register] = capture_server.matching("/fn/register?deployId=d-1")
    assert json.loads(register.body)["url"] == serve_url

    in_band = transport.put_sync(sync.build_sync_put(serve_url, SIGNING_KEY, in_band=True))
    result = sync.interpret_sync_response(
        in_band.status, in_band.headers, in_band.body, signing_keys=[SIGNING_KEY]
    )
    assert result.ok and result.config is not None and result.config.url == serve_url
