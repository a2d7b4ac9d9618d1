"""SDK apps and security: our calls are signed and the SDK refuses any that is not; answers
must be signed back; workers call only allowed URLs (SSRF); no secret reaches the logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client

from django_inngest.engine import worker
from django_inngest.models import FunctionRun, RunStatus, SdkApp
from django_inngest.sdk import signing, wire
from django_inngest.sdk_apps.sync import request_sync
from tests.helpers import make_due
from tests.sdkapp.capture import Captured, CaptureServer
from tests.sdkserve.app import OTHER_KEY, SERVE_PATH, SIGNING_KEY, probe
from tests.sdkserve.fixtures import Call, SdkServer
from tests.test_sdkserve_sync import BEARER, register, register_body

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_sdk_refuses_unsigned_and_forged_call_requests(sdk_server: SdkServer) -> None:
    """What our engine sends is accepted (every other test); anything else is not."""
    payload = wire.CallRequest(
        event={"name": "sdks/steps", "data": {}, "id": "e", "ts": 1},
        ctx=wire.CallContext(run_id="01JFORGED"),
    ).to_payload()
    body = signing.canonical_json(payload)
    url = f"{SERVE_PATH}?fnId=sdks-steps&stepId=step"
    http = Client()
    for signature in (None, "t=1&s=" + "0" * 64, signing.signature_header(body, OTHER_KEY)):
        headers = {"X-Inngest-Signature": signature} if signature else {}
        response = http.post(url, body, content_type="application/json", headers=headers)
        assert response.status_code == 401, signature
    assert probe.executions == {}
    signed = signing.signature_header(body, SIGNING_KEY)
    response = http.post(
        url, body, content_type="application/json", headers={"X-Inngest-Signature": signed}
    )
    assert response.status_code == 206  # the genuine article: step s1 ran


def test_a_run_cannot_proceed_when_our_key_is_not_the_apps(
    sdk_server: SdkServer, settings: Any, calls: list[Call]
) -> None:
    settings.DJANGO_INNGEST_SIGNING_KEY = OTHER_KEY
    run = sdk_server.run("sdks/steps")
    assert (run.status, run.wait_kind, run.attempt) == (RunStatus.RUNNING, "retry", 1)
    assert [c.outcome for c in calls] == ["Unauthorized"]
    assert probe.executions == {}  # the app ran nothing for us
    settings.DJANGO_INNGEST_SIGNING_KEY = SIGNING_KEY


def fake_app(capture_server: CaptureServer, answer: Any) -> FunctionRun:
    """An app at the capture server, synced through /fn/register; one run of its function."""
    url = f"{capture_server.url}/api/inngest"
    assert register(register_body(url), **BEARER).status_code == 200
    capture_server.responders["/api/inngest"] = answer
    from django_inngest import Event, Inngest

    (event_id,) = Inngest(app_id="t").send_sync(Event(name="fake/go"))
    return FunctionRun.objects.get(event_id=event_id)


def sdk_answer(body: object, *, key: str | None, status: int = 200) -> Any:
    def respond(request: Captured) -> Any:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "x-inngest-sdk": "inngest-py:v0.5.19"}
        if key is not None:
            headers["X-Inngest-Signature"] = signing.signature_header(raw, key)
        return status, headers, raw

    return respond


@pytest.mark.parametrize(
    ("key", "trusted"), [(None, False), (OTHER_KEY, False), (SIGNING_KEY, True)]
)
def test_answers_must_be_signed_with_our_key(
    capture_server: CaptureServer,
    sdk_allowed: None,
    dispatched: list[str],
    key: str | None,
    trusted: bool,
) -> None:
    run = fake_app(capture_server, sdk_answer({"stolen": True}, key=key))
    worker.advance(run.run_id)
    run.refresh_from_db()
    [call] = capture_server.matching("/api/inngest")
    assert signing.verify_request(call.body, call.headers["x-inngest-signature"], [SIGNING_KEY])
    if trusted:
        assert (run.status, run.output) == (RunStatus.COMPLETED, {"stolen": True})
    else:
        assert (run.status, run.output, run.attempt) == (RunStatus.RUNNING, None, 1)


def test_an_untrusted_answer_is_recorded_as_such(
    capture_server: CaptureServer, sdk_allowed: None, dispatched: list[str], settings: Any
) -> None:
    settings.DJANGO_INNGEST_DEFAULT_RETRIES = 0
    run = fake_app(capture_server, sdk_answer("done", key=None))
    worker.advance(run.run_id)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error["name"] == "SdkUntrustedResponseError"
    assert "not signed with our key" in run.error["message"]


def test_a_sync_is_never_sent_to_a_host_that_is_not_allowed(
    capture_server: CaptureServer, settings: Any
) -> None:
    settings.DJANGO_INNGEST_SDK_ALLOWED_HOSTS = ["localhost"]
    settings.DJANGO_INNGEST_SDK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    outcome = request_sync(f"{capture_server.url}/api/inngest")  # 127.0.0.1:<port>
    assert not outcome.ok and "is not in the allowed hosts" in outcome.message
    settings.DJANGO_INNGEST_SDK_ALLOWED_NETWORKS = []  # the name is allowed, loopback is not
    port = capture_server.url.rsplit(":", 1)[1]
    outcome = request_sync(f"http://localhost:{port}/api/inngest")
    assert not outcome.ok and "non-public address" in outcome.message
    assert capture_server.requests == []  # no connection was ever made


def test_workers_stop_calling_an_app_whose_host_is_no_longer_allowed(
    sdk_server: SdkServer, settings: Any, calls: list[Call]
) -> None:
    settings.DJANGO_INNGEST_SDK_ALLOWED_NETWORKS = []  # loopback: no longer allowed
    run = sdk_server.run("sdks/steps")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, "retry")
    assert calls[0].outcome == "Unreachable"
    assert probe.executions == {}


def test_no_secret_reaches_the_logs(
    sdk_server: SdkServer, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sdk_server.run("sdks/steps")
    sdk_server.run("sdks/refuse")
    sdk_server.sync("/api/inngest-badkey")
    settings.DJANGO_INNGEST_SIGNING_KEY = OTHER_KEY
    sdk_server.run("sdks/steps")
    register(register_body("http://localhost:1/x"), Authorization="Bearer nope")
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "Run failed" in text  # the logs are there ...
    for key in (SIGNING_KEY, OTHER_KEY):
        for secret in (signing.key_body(key), signing.hashed_signing_key(key)):
            assert secret not in text  # ... without the keys, raw or hashed
    assert SdkApp.objects.count() == 1


def test_an_op_this_server_does_not_run_fails_the_run_naming_it(
    capture_server: CaptureServer, sdk_allowed: None, dispatched: list[str]
) -> None:
    op = {"id": "a" * 40, "displayName": "ask", "name": "ask", "op": "AIGateway", "opts": {}}
    run = fake_app(capture_server, sdk_answer([op], key=SIGNING_KEY, status=206))
    assert worker.advance(run.run_id) == "failed"
    run.refresh_from_db()
    assert run.error["name"] == "UnsupportedOpcodeError"
    assert "'ask' is a AIGateway op" in run.error["message"]


def test_an_answer_that_repeats_memoized_steps_is_retried_not_looped_on(
    capture_server: CaptureServer, sdk_allowed: None, dispatched: list[str], settings: Any
) -> None:
    settings.DJANGO_INNGEST_DEFAULT_RETRIES = 1
    op = {"id": "b" * 40, "displayName": "s", "name": "s", "op": "StepRun", "data": 1}
    run = fake_app(capture_server, sdk_answer([op], key=SIGNING_KEY, status=206))
    assert worker.advance(run.run_id) == "paused"  # s memoized; the same answer again: a retry
    assert len(capture_server.matching("/api/inngest")) == 2
    run.refresh_from_db()
    assert (run.attempt, run.wait_kind) == (1, "retry")
    make_due(run)
    assert worker.advance(run.run_id) == "failed"
    run.refresh_from_db()
    assert "only steps already memoized" in run.error["message"]
