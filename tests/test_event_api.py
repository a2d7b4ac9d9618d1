"""``POST /e/<event_key>``: Inngest's event API, wire-compatible with the official SDKs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client, override_settings

from django_inngest.api import event_api
from django_inngest.models import Event, FunctionRun
from tests.api_fixtures import EVENT_KEY, SIGNING_KEY, define_function

pytestmark = pytest.mark.django_db
URL = f"/e/{EVENT_KEY}"


def post(body: Any, *, raw: bool = False, url: str = URL, **extra: Any) -> Any:
    data = body if raw else json.dumps(body)
    content_type = extra.pop("content_type", "application/json")
    return Client().generic("POST", url, data, content_type=content_type, **extra)


def assert_rejected(response: Any, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"ids", "status", "error"}
    assert body["ids"] == [] and body["status"] == status
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    assert not Event.objects.exists()


# -- success ---------------------------------------------------------------------------------


def test_single_event_object() -> None:
    response = post({"name": "app/user.created", "data": {"id": 1}})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ids", "status"} and body["status"] == 200
    [event] = Event.objects.all()
    assert body["ids"] == [event.internal_id]
    assert (event.name, event.data, event.user, event.v) == ("app/user.created", {"id": 1}, {}, "")


def test_batch_ids_are_internal_and_in_order() -> None:
    names = [f"app/e{i}" for i in range(5)]
    response = post([{"name": n, "id": f"sender-{n}"} for n in names])
    assert response.status_code == 200
    ids = response.json()["ids"]
    assert [Event.objects.get(pk=i).name for i in ids] == names
    # The IDs are internal ULIDs, not the sender's ids.
    assert not any(i.startswith("sender-") for i in ids)


def test_official_python_sdk_request() -> None:
    """What inngest-py's ``send`` posts: a JSON list, SDK headers, no user/v fields."""
    now_ms = int(time.time() * 1000)
    response = Client().post(
        URL,
        json.dumps([{"data": {"a": 1}, "id": "abc", "name": "app/sdk", "ts": now_ms}]),
        content_type="application/json",
        headers={
            "x-inngest-sdk": "inngest-py:v0.5.18",
            "user-agent": "inngest-py:v0.5.18",
            "x-inngest-req-version": "2",
            "x-inngest-event-id-seed": f"{now_ms},AAAAAAAAAAAAAA==",
        },
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    # inngest-py reads {"ids": [...], "error": ...}; no error key means success.
    assert body.get("error") is None and len(body["ids"]) == 1
    event = Event.objects.get(pk=body["ids"][0])
    assert (event.external_id, event.ts) == ("abc", now_ms)


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/x-www-form-urlencoded"])
def test_json_body_accepted_without_json_content_type(content_type: str) -> None:
    response = post({"name": "app/x"}, content_type=content_type)
    assert response.status_code == 200, response.content


def test_ts_defaults_to_receive_time() -> None:
    before = int(time.time() * 1000)
    ids = post([{"name": "app/a"}, {"name": "app/b", "ts": 0}]).json()["ids"]
    after = int(time.time() * 1000)
    for internal_id in ids:
        assert before <= Event.objects.get(pk=internal_id).ts <= after


def test_data_inngest_is_stripped() -> None:
    ids = post({"name": "app/x", "data": {"_inngest": {"fake": True}, "keep": 1}}).json()["ids"]
    assert Event.objects.get(pk=ids[0]).data == {"keep": 1}


def test_dedupe_stores_both_and_flags_the_second() -> None:
    first = post({"name": "app/x", "id": "same"}).json()["ids"]
    second = post({"name": "app/x", "id": "same"}).json()["ids"]
    assert first != second
    assert Event.objects.count() == 2
    assert not Event.objects.get(pk=first[0]).is_duplicate
    assert Event.objects.get(pk=second[0]).is_duplicate


@pytest.mark.usefixtures("isolated_registry")
def test_events_trigger_functions() -> None:
    define_function("on-signup", "app/signup")
    ids = post([{"name": "app/signup"}, {"name": "app/other"}]).json()["ids"]
    run = FunctionRun.objects.get()
    assert (run.event_id, run.function_id) == (ids[0], "api-tests-on-signup")


@override_settings(DJANGO_INNGEST_EVENT_KEYS=["first-key", "second-key"])
def test_any_configured_key_works() -> None:
    assert post({"name": "app/x"}, url="/e/second-key").status_code == 200


@override_settings(DJANGO_INNGEST_MAX_EVENTS_PER_REQUEST=3)
def test_batch_at_the_limit_is_accepted() -> None:
    assert len(post([{"name": "app/x"}] * 3).json()["ids"]) == 3


def test_default_limit_is_inngest_5000() -> None:
    body = [{"name": "app/x"}] * 5001
    assert_rejected(post(body), 400, "too many events", "5001", "5000")


# -- rejections ------------------------------------------------------------------------------


def test_wrong_key() -> None:
    response = post({"name": "app/x"}, url="/e/not-the-key")
    assert response.status_code == 401
    assert response.json() == {"status": 401, "error": "Event key not found"}
    assert not Event.objects.exists()


@override_settings(DJANGO_INNGEST_EVENT_KEYS=[])
def test_no_configured_keys_refuses_everything() -> None:
    assert post({"name": "app/x"}).status_code == 401


def test_get_is_405_json() -> None:
    response = Client().get(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["status"] == 405


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        '{"name": "app/x",}',
        '{"name": NaN}',
        '{"name": "app/x", "data": {"v": Infinity}}',
    ],
)
def test_malformed_json(body: str) -> None:
    assert_rejected(post(body, raw=True), 400, "malformed JSON")


def test_invalid_utf8() -> None:
    assert_rejected(post(b'{"name": "\xff"}', raw=True), 400, "malformed JSON")


def test_deeply_nested_json() -> None:
    assert_rejected(post("[" * 100_000 + "]" * 100_000, raw=True), 400, "malformed JSON")


def test_empty_body() -> None:
    assert_rejected(post("", raw=True), 400, "empty")


@pytest.mark.parametrize("body", ['"app/x"', "5", "null", "true"])
def test_body_not_an_object_or_array(body: str) -> None:
    assert_rejected(post(body, raw=True), 400, "JSON event object or an array")


def test_empty_array() -> None:
    assert_rejected(post([]), 400, "empty")


def test_unsupported_content_type() -> None:
    assert_rejected(post({"name": "app/x"}, content_type="multipart/form-data; boundary=x"), 415)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"data": {}}, "`name`"),
        ({"name": ""}, "`name`"),
        ({"name": 5}, "`name`"),
        ({"name": "x" * 256}, "`name`"),
        ({"name": "app/x", "data": [1]}, "`data`"),
        ({"name": "app/x", "user": "me"}, "`user`"),
        ({"name": "app/x", "id": 5}, "`id`"),
        ({"name": "app/x", "ts": "yesterday"}, "`ts`"),
        ({"name": "app/x", "ts": -1}, "`ts`"),
        ({"name": "app/x", "ts": 2**70}, "`ts`"),
        ({"name": "app/x", "v": 2}, "`v`"),
    ],
)
def test_bad_fields_are_named(event: dict[str, Any], field: str) -> None:
    assert_rejected(post(event), 400, field)


def test_batch_error_names_the_position_and_stores_nothing() -> None:
    assert_rejected(post([{"name": "app/ok"}, {"data": {}}]), 400, "event 1", "`name`")


@pytest.mark.parametrize("name", ["inngest/function.finished", "Inngest/x", "INNGEST/x"])
def test_reserved_prefix_any_case(name: str) -> None:
    assert_rejected(post({"name": name}), 400, "reserved")


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "app/x", "data": {"k": "a\\u0000b"}}',
        b'{"name": "app/\\u0000"}',
        b'{"name": "app/x", "data": {"k": "\\ud800"}}',
        b'{"name": "app/\\uDC00"}',
        b'{"name": "app/x", "data": {"\\ud800": 1}}',
        b'[{"name": "app/x"}, {"name": "app/x", "data": {"k": ["\\udfff"]}}]',
    ],
)
def test_unstorable_strings_are_refused(body: bytes) -> None:
    """PostgreSQL refuses NUL; no driver can encode a lone surrogate. Never a 500."""
    assert_rejected(post(body, raw=True), 400, "NUL", "surrogate")


def test_non_ascii_and_escaped_pairs_are_stored() -> None:
    body = b'{"name": "app/x", "data": {"emoji": "\\ud83d\\ude00", "raw": "\xc3\xa9"}}'
    ids = post(body, raw=True).json()["ids"]
    assert Event.objects.get(pk=ids[0]).data == {"emoji": "\U0001f600", "raw": "\u00e9"}


@override_settings(DJANGO_INNGEST_MAX_EVENTS_PER_REQUEST=3)
def test_too_many_events() -> None:
    assert_rejected(post([{"name": "app/x"}] * 4), 400, "too many events", "3")


@override_settings(DJANGO_INNGEST_MAX_EVENT_BYTES=100)
def test_event_over_size() -> None:
    assert_rejected(post({"name": "app/x", "data": {"blob": "x" * 200}}), 400, "bytes", "100")


def test_body_over_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_api, "MAX_BODY_BYTES", 1000)
    with override_settings(DJANGO_INNGEST_MAX_EVENT_BYTES=100):
        response = post([{"name": "app/x", "data": {"n": i}} for i in range(100)])
    assert_rejected(response, 413, "over the limit")


def test_declared_length_over_size_is_refused_before_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_api, "MAX_BODY_BYTES", 10)
    with override_settings(DJANGO_INNGEST_MAX_EVENT_BYTES=1):
        assert_rejected(post({"name": "app/x"}), 413, "bytes")


# -- the official SDK, over HTTP -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_official_inngest_sdk_end_to_end(live_server: Any) -> None:
    """inngest-py's own ``send_sync`` against a live server (skipped without ``inngest``)."""
    inngest = pytest.importorskip("inngest")
    from inngest._internal.errors import SendEventsError  # not re-exported by the package

    def client(event_key: str) -> Any:
        return inngest.Inngest(
            app_id="sdk-compat",
            event_key=event_key,
            event_api_base_url=live_server.url,
            is_production=True,
            signing_key=SIGNING_KEY,
        )

    sdk, wrong = client(EVENT_KEY), client("wrong-key")
    try:
        ids = sdk.send_sync(
            [
                inngest.Event(name="sdk-compat/a", data={"n": 1}, id="once"),
                inngest.Event(name="sdk-compat/b"),
            ]
        )
        assert [Event.objects.get(pk=i).name for i in ids] == ["sdk-compat/a", "sdk-compat/b"]
        [again] = sdk.send_sync(inngest.Event(name="sdk-compat/a", id="once"))
        assert Event.objects.get(pk=again).is_duplicate
        with pytest.raises(SendEventsError, match="reserved"):
            sdk.send_sync(inngest.Event(name="inngest/function.failed"))
        with pytest.raises(SendEventsError, match="Event key not found"):
            wrong.send_sync(inngest.Event(name="sdk-compat/a"))
    finally:
        # inngest-py 0.5 has no close(); its httpx client would leave its keep-alive sockets
        # to the garbage collector (a ResourceWarning, an error under our warning filters).
        for used in (sdk, wrong):
            used._http_client._http_client_sync.close()
