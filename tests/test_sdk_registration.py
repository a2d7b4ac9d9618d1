"""Syncing an inngest-py app: the PUT we send (django_inngest.sdk.sync), the ``/fn/register``
body it makes the SDK send, and parsing that body (django_inngest.sdk.registration)."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from django_inngest.sdk import registration, signing, sync
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.registration import CancelRule, CronTrigger, EventTrigger
from tests.sdkapp.capture import Captured, CaptureServer, json_answer
from tests.sdkapp.fixtures import SdkApp, make_sdk_app
from tests.sdkapp.functions import SIGNING_KEY
from tests.sdkapp.harness import SYNC_PATH, Answer

SERVE_URL = f"http://testserver{SYNC_PATH}"


def put(http: Client, request: sync.SyncPut) -> Answer:
    headers = {k: v for k, v in request.headers.items() if k != "Content-Type"}
    target = request.url.removeprefix("http://testserver")
    response = http.generic(
        "PUT", target, request.body, content_type="application/json", headers=headers
    )
    return Answer(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=response.content,
    )


def synced_body(sdk_app: SdkApp, capture_server: CaptureServer, **put_kwargs: Any) -> Captured:
    answer = put(sdk_app.http, sync.build_sync_put(SERVE_URL, SIGNING_KEY, **put_kwargs))
    result = sync.interpret_sync_response(answer.status, answer.headers, answer.body)
    assert result == sync.SyncResult(ok=True, modified=True), answer.body
    [register] = capture_server.matching("/fn/register")
    return register


def test_an_out_of_band_sync_end_to_end(sdk_app: SdkApp, capture_server: CaptureServer) -> None:
    register = synced_body(sdk_app, capture_server, deploy_id="sync-42")
    assert register.method == "POST"
    assert register.path == "/fn/register?deployId=sync-42"
    assert register.headers["authorization"] == f"Bearer {signing.hashed_signing_key(SIGNING_KEY)}"
    assert signing.bearer_token_matches(register.headers["authorization"].split()[1], [SIGNING_KEY])
    assert register.headers["x-inngest-expected-server-kind"] == "cloud"
    assert register.headers["x-inngest-sdk"] == "inngest-py:v0.5.19"

    app = registration.parse_register_body(register.body)
    assert (app.app_id, app.url, app.deploy_type) == ("sdkapp", SERVE_URL, "ping")
    assert (app.framework, app.sdk, app.version, app.app_version) == (
        "django",
        "py:v0.5.19",
        "0.1",
        None,
    )
    assert app.capabilities == {"connect": "v1", "in_band_sync": "v1", "trust_probe": "v1"}
    functions = {fn.id: fn for fn in app.functions}
    assert sorted(functions) == [
        "sdkapp-child",
        "sdkapp-failing-step",
        "sdkapp-flow",
        "sdkapp-flow-controlled",
        "sdkapp-flow-failure",
        "sdkapp-nightly",
        "sdkapp-non-retriable",
        "sdkapp-race",
        "sdkapp-retry-after",
    ]
    flow = functions["sdkapp-flow"]
    assert flow.name == "flow"
    assert flow.triggers == (EventTrigger(event="sdk/flow", expression="event.data.go == true"),)
    assert flow.cancel == (
        CancelRule(
            event="sdk/cancel", if_exp="async.data.id == event.data.id", timeout=timedelta(hours=1)
        ),
    )
    assert (flow.retries, flow.max_attempts(default_retries=4)) == (2, 3)
    assert flow.step_url == f"{SERVE_URL}?fnId=sdkapp-flow&stepId=step"
    assert (flow.options_present, flow.flow_control) == ((), {})
    assert functions["sdkapp-child"].max_attempts(default_retries=4) == 5

    failure = functions["sdkapp-flow-failure"]
    assert failure.triggers == (
        EventTrigger(
            event="inngest/function.failed", expression="event.data.function_id == 'sdkapp-flow'"
        ),
    )
    assert failure.retries == 0
    # The SDK sends `"concurrency": []` for every on_failure function: not an option in use.
    [raw_failure] = [f for f in json.loads(register.body)["functions"] if f["id"] == failure.id]
    assert (raw_failure["concurrency"], raw_failure["cancel"]) == ([], [])
    assert failure.options_present == ()

    limited = functions["sdkapp-flow-controlled"]
    assert limited.options_present == ("concurrency", "debounce", "throttle")
    assert limited.flow_control == {
        "concurrency": [{"key": "event.data.id", "limit": 3}],
        "debounce": {"period": "30s"},
        "throttle": {"burst": 1, "limit": 10, "period": "1m"},
    }
    nightly = functions["sdkapp-nightly"]
    assert (nightly.triggers, nightly.options_present) == (
        (CronTrigger(cron="0 3 * * *"),),
        ("cron",),
    )
    assert app.options_present == ("concurrency", "cron", "debounce", "throttle")
    assert app.urls()[0] == SERVE_URL and len(app.urls()) == 10


def test_the_checksum_ignores_key_order_and_spacing(
    sdk_app: SdkApp, capture_server: CaptureServer
) -> None:
    body = synced_body(sdk_app, capture_server).json()
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=3).encode()
    first = registration.parse_register_body(json.dumps(body).encode())
    assert registration.parse_register_body(reordered).checksum == first.checksum
    body["functions"][0]["name"] = "renamed"
    assert registration.parse_register_payload(body).checksum != first.checksum


def test_a_refused_sync_still_answers_200_so_the_body_decides(
    sdk_app: SdkApp, capture_server: CaptureServer
) -> None:
    message = "functions[5] (sdkapp-flow-controlled): 'concurrency' is not supported"
    capture_server.responders["/fn/register"] = lambda _: json_answer(
        *astuple(sync.reply_invalid(message))
    )
    answer = put(sdk_app.http, sync.build_sync_put(SERVE_URL, SIGNING_KEY))
    assert answer.status == 200  # inngest-py 0.5.19 drops the error status it built
    assert json.loads(answer.body) == {"error": message}
    assert sync.interpret_sync_response(
        answer.status, answer.headers, answer.body
    ) == sync.SyncResult(ok=False, error=message)


def astuple(reply: sync.Reply) -> tuple[int, dict[str, Any]]:
    return reply.status, reply.body


def test_a_401_with_a_json_body_makes_the_sdk_retry_with_its_fallback_key(
    capture_server: CaptureServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fallback = "signkey-test-" + "cd" * 16
    app = make_sdk_app(capture_server.url, settings, monkeypatch, signing_key_fallback=fallback)

    def only_fallback(request: Captured) -> Any:
        token = request.headers["authorization"].removeprefix("Bearer ")
        if signing.bearer_token_matches(token, [fallback]):
            return json_answer(*astuple(sync.reply_synced(False, app_id="sdkapp")))
        return json_answer(*astuple(sync.reply_unauthorized()))

    capture_server.responders["/fn/register"] = only_fallback
    answer = put(app.http, sync.build_sync_put(SERVE_URL, SIGNING_KEY))
    assert sync.interpret_sync_response(
        answer.status, answer.headers, answer.body
    ) == sync.SyncResult(ok=True, modified=False)
    assert len(capture_server.matching("/fn/register")) == 2


def test_a_server_kind_mismatch_is_refused_by_the_sdk(
    sdk_app: SdkApp, capture_server: CaptureServer
) -> None:
    answer = put(sdk_app.http, sync.build_sync_put(SERVE_URL, SIGNING_KEY, server_kind="dev"))
    assert answer.status == 400
    result = sync.interpret_sync_response(answer.status, answer.headers, answer.body)
    assert not result.ok and result.error and "server_kind_mismatch" in result.error
    assert capture_server.matching("/fn/register") == []
    assert (
        sync.server_kind_mismatch("dev", "cloud")
        == "this server is in 'cloud' mode but the app expects 'dev'"
    )
    assert sync.server_kind_mismatch("cloud", "cloud") is None
    assert sync.server_kind_mismatch(None, "dev") is None


def test_an_in_band_sync_returns_the_config_signed(
    sdk_app: SdkApp, capture_server: CaptureServer
) -> None:
    answer = put(sdk_app.http, sync.build_sync_put(SERVE_URL, SIGNING_KEY, in_band=True))
    assert answer.headers["x-inngest-sync-kind"] == "in_band"
    assert capture_server.requests == []  # no call back into our server
    result = sync.interpret_sync_response(
        answer.status, answer.headers, answer.body, signing_keys=[SIGNING_KEY]
    )
    assert result.ok and result.config is not None
    assert (result.config.app_id, result.config.url, result.config.sdk) == (
        "sdkapp",
        SERVE_URL,
        "py:v0.5.19",
    )
    assert len(result.config.functions) == 9
    unverified = sync.interpret_sync_response(
        answer.status, answer.headers, answer.body, signing_keys=["signkey-x-" + "00" * 8]
    )
    assert unverified == sync.SyncResult(
        ok=False, error="in-band sync answer is not signed with our key"
    )


def test_an_unsigned_in_band_sync_is_refused(sdk_app: SdkApp) -> None:
    request = sync.build_sync_put(SERVE_URL, SIGNING_KEY, in_band=True)
    del request.headers["X-Inngest-Signature"]
    answer = put(sdk_app.http, request)
    assert answer.status == 401
    result = sync.interpret_sync_response(answer.status, answer.headers, answer.body)
    assert result == sync.SyncResult(ok=False, error="HTTP 401: Unauthorized")


def test_sync_put_shape() -> None:
    request = sync.build_sync_put(
        "https://app.example.com/api/inngest?x=1", SIGNING_KEY, deploy_id="d1", timestamp=5
    )
    assert request.url == "https://app.example.com/api/inngest?x=1&deployId=d1"
    assert request.body == b'{"url":"https://app.example.com/api/inngest?x=1"}'
    assert request.headers == {
        "Content-Type": "application/json",
        "X-Inngest-Signature": signing.signature_header(request.body, SIGNING_KEY, timestamp=5),
        "X-Inngest-Server-Kind": "cloud",
    }
    with pytest.raises(SdkProtocolError, match="serve_url"):
        sync.build_sync_put("ftp://x/", SIGNING_KEY)


def test_replies() -> None:
    assert sync.reply_synced(True) == sync.Reply(200, {"ok": True, "modified": True})
    assert sync.reply_synced(False, app_id="a", sync_id="s").body == {
        "ok": True,
        "modified": False,
        "app_id": "a",
        "sync_id": "s",
    }
    assert sync.reply_invalid("bad") == sync.Reply(400, {"error": "bad"})
    assert sync.reply_unauthorized().status == 401


# --- parsing errors -------------------------------------------------------------------------------

MINIMAL: dict[str, Any] = {
    "appname": "app",
    "url": "https://app.example.com/api/inngest",
    "functions": [
        {
            "id": "app-fn",
            "triggers": [{"event": "app/x"}],
            "steps": {
                "step": {
                    "id": "step",
                    "name": "step",
                    "runtime": {
                        "type": "http",
                        "url": "https://app.example.com/api/inngest?fnId=app-fn&stepId=step",
                    },
                }
            },
        }
    ],
}
FN = "functions[0] (app-fn)"


def test_a_minimal_body_and_case_insensitive_top_level_keys() -> None:
    app = registration.parse_register_payload(MINIMAL)
    assert (app.app_id, app.deploy_type, app.framework, app.capabilities) == (
        "app",
        "ping",
        None,
        {},
    )
    [fn] = app.functions
    assert (fn.name, fn.retries, fn.cancel) == ("app-fn", None, ())
    go_style = {"appName": "app", "deployType": "ping", "URL": MINIMAL["url"], "Functions": []}
    assert registration.parse_register_payload(go_style).app_id == "app"


def mutated(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    target: Any = body
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return body


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("appname", DELETE, "appname"),
        ("appname", " ", "appname"),
        ("url", "app.example.com/api", "url"),
        ("url", "javascript:alert(1)", "url"),
        ("functions", {}, "functions"),
        ("functions.0", "fn", "functions[0]"),
        ("functions.0.id", 3, "functions[0].id"),
        ("functions.0.name", 3, f"{FN}.name"),
        ("functions.0.triggers", [], f"{FN}.triggers"),
        ("functions.0.triggers.0", {"expression": "x"}, f"{FN}.triggers[0]"),
        ("functions.0.triggers.0", {"event": "a", "cron": "* * * * *"}, f"{FN}.triggers[0]"),
        ("functions.0.triggers.0", {"event": ""}, f"{FN}.triggers[0].event"),
        ("functions.0.triggers.0", {"event": "a", "expression": 1}, f"{FN}.triggers[0].expression"),
        (
            "functions.0.triggers.0",
            {"cron": "* * * * *", "jitter": "soon"},
            f"{FN}.triggers[0].jitter",
        ),
        ("functions.0.cancel", {"event": "x"}, f"{FN}.cancel"),
        ("functions.0.cancel", [{"if": "true"}], f"{FN}.cancel[0].event"),
        ("functions.0.cancel", [{"event": "x", "timeout": 60}], f"{FN}.cancel[0].timeout"),
        ("functions.0.cancel", [{"event": "x", "if": False}], f"{FN}.cancel[0].if"),
        ("functions.0.cancel", [{"event": "x"}] * 6, f"{FN}.cancel"),
        ("functions.0.steps", DELETE, f"{FN}.steps"),
        ("functions.0.steps", {"a": {}, "b": {}}, f"{FN}.steps"),
        ("functions.0.steps.step", "x", f"{FN}.steps.step"),
        ("functions.0.steps.step.runtime", DELETE, f"{FN}.steps.step.runtime"),
        (
            "functions.0.steps.step.runtime",
            {"type": "ws", "url": "wss://x"},
            f"{FN}.steps.step.runtime.type",
        ),
        (
            "functions.0.steps.step.runtime",
            {"type": "http", "url": "/api"},
            f"{FN}.steps.step.runtime.url",
        ),
        ("functions.0.steps.step.retries", 3, f"{FN}.steps.step.retries"),
        ("functions.0.steps.step.retries", {"attempts": "3"}, f"{FN}.steps.step.retries.attempts"),
        ("functions.0.steps.step.retries", {"attempts": 21}, f"{FN}.steps.step.retries.attempts"),
        ("functions.0.steps.step.retries", {"attempts": -1}, f"{FN}.steps.step.retries.attempts"),
        ("capabilities", {"connect": 1}, "capabilities"),
        ("framework", 1, "framework"),
        ("appName", "other", "appName"),
    ],
)
def test_every_malformed_field_is_named(path: str, value: Any, field: str) -> None:
    with pytest.raises(SdkProtocolError) as caught:
        registration.parse_register_payload(mutated(path, value))
    assert caught.value.field == field, caught.value


def test_duplicate_function_ids_and_non_json_bodies() -> None:
    body = copy.deepcopy(MINIMAL)
    body["functions"].append(copy.deepcopy(body["functions"][0]))
    with pytest.raises(SdkProtocolError, match=r"'app-fn' is also functions\[0\].id") as caught:
        registration.parse_register_payload(body)
    assert caught.value.field == "functions[1].id"
    for raw in (b"{", b"[]", b"\xff"):
        with pytest.raises(SdkProtocolError) as caught:
            registration.parse_register_body(raw)
        assert caught.value.field == "body"


def test_sdk_functions_stay_out_of_our_own_registry(sdk_app: SdkApp) -> None:
    from django_inngest.registry import registry

    assert sdk_app.fns.flow.id == "sdkapp-flow"
    assert [f.id for f in registry.all() if f.id.startswith("sdkapp")] == []
