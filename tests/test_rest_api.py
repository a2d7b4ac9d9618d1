"""REST v1: shapes, auth, validation and conformance to the served OpenAPI document."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_inngest.ingest.events import send_events
from django_inngest.models import (
    Cancellation,
    CancelSource,
    Event,
    FunctionRun,
    RunStatus,
    StepRun,
)
from tests.api_fixtures import (
    APP_ID,
    SIGNING_KEY,
    ago,
    assert_documented,
    bearer_client,
    define_function,
    hashed_key,
    iso,
    make_event,
    make_registration,
    make_run,
    openapi_schema,
    user_client,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return openapi_schema()


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def api() -> APIClient:
    """Authenticated with the raw signing key."""
    return bearer_client()


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == status
    message: str = body["error"]
    return message


# -- OpenAPI document ------------------------------------------------------------------------


ENDPOINTS = {
    "/v1/events": {"get"},
    "/v1/events/{internal_id}": {"get"},
    "/v1/events/{internal_id}/runs": {"get"},
    "/v1/runs/{run_id}": {"get", "delete"},
    "/v1/runs/{run_id}/steps": {"get"},
    "/v1/runs/{run_id}/rerun": {"post"},
    "/v1/cancellations": {"get", "post"},
    "/v1/cancellations/{cancellation_id}": {"delete"},
}


def test_schema_documents_every_endpoint(schema: dict[str, Any]) -> None:
    assert {path: set(ops) for path, ops in schema["paths"].items()} == ENDPOINTS
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"200", "401", "403"} <= set(responses), (path, method)
            assert {"signingKey": []} in operation["security"]
            if "{" in path:
                assert "400" in responses and "404" in responses, (path, method)


def test_schema_is_public_and_json() -> None:
    response = Client().get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def test_unknown_path_is_json_404(api: APIClient) -> None:
    assert "No such endpoint" in error_of(api.get("/v1/nope"), 404)
    assert "No such endpoint" in error_of(api.get("/v1/events/"), 404)


def test_options_is_405(api: APIClient) -> None:
    error_of(api.options("/v1/events"), 405)


def test_unsupported_method_is_405(api: APIClient) -> None:
    assert "PUT" in error_of(api.put("/v1/events", {}, format="json"), 405)


# -- authentication and permissions ----------------------------------------------------------


def test_no_credentials_is_401(anon: APIClient) -> None:
    response = anon.get("/v1/events")
    error_of(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [SIGNING_KEY, hashed_key(), hashed_key(keep_prefix=False)],
    ids=["raw", "hashed", "hashed-unprefixed"],
)
def test_bearer_signing_key(anon: APIClient, token: str, schema: dict[str, Any]) -> None:
    response = anon.get("/v1/events", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_documented(schema, "/v1/events", "get", response, 200)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong",
        f"Bearer {SIGNING_KEY}x",
        f"Bearer {hashed_key()[:-1]}",
        "Bearer",
        f"Bearer {SIGNING_KEY} extra",
        "Bearer sïgnkey",
    ],
)
def test_bad_bearer_is_401(anon: APIClient, header: str, schema: dict[str, Any]) -> None:
    response = anon.get("/v1/events", HTTP_AUTHORIZATION=header)
    assert_documented(schema, "/v1/events", "get", response, 401)


def test_other_auth_scheme_is_401(anon: APIClient) -> None:
    error_of(anon.get("/v1/events", HTTP_AUTHORIZATION="Basic dTpwdw=="), 401)


@override_settings(DJANGO_INNGEST_SIGNING_KEY="")
def test_empty_signing_key_disables_bearer(anon: APIClient) -> None:
    error_of(anon.get("/v1/events", HTTP_AUTHORIZATION=f"Bearer {SIGNING_KEY}"), 401)
    error_of(anon.get("/v1/events", HTTP_AUTHORIZATION="Bearer "), 401)


@override_settings(DJANGO_INNGEST_SIGNING_KEY="not-hex-at-all")
def test_non_hex_signing_key_works_raw_only(anon: APIClient) -> None:
    assert anon.get("/v1/events", HTTP_AUTHORIZATION="Bearer not-hex-at-all").status_code == 200


def test_user_without_permission_is_403(schema: dict[str, Any]) -> None:
    client = user_client()
    response = client.get("/v1/events")
    assert_documented(schema, "/v1/events", "get", response, 403)
    assert "django_inngest.view_event" in response.json()["error"]


def test_user_with_permission(schema: dict[str, Any]) -> None:
    client = user_client("django_inngest.view_event")
    assert_documented(schema, "/v1/events", "get", client.get("/v1/events"), 200)


def test_runs_of_event_need_both_view_permissions() -> None:
    event = make_event()
    url = f"/v1/events/{event.internal_id}/runs"
    error_of(user_client("django_inngest.view_event").get(url), 403)
    both = user_client(
        "django_inngest.view_event", "django_inngest.view_functionrun", username="both"
    )
    assert both.get(url).status_code == 200


def test_superuser_may_do_everything() -> None:
    User.objects.create_superuser("root", password="pw")
    client = APIClient()
    client.force_login(User.objects.get(username="root"))
    run = make_run()
    assert client.delete(f"/v1/runs/{run.run_id}").status_code == 200


def test_viewing_does_not_grant_cancel() -> None:
    run = make_run()
    client = user_client("django_inngest.view_functionrun")
    assert client.get(f"/v1/runs/{run.run_id}").status_code == 200
    error_of(client.delete(f"/v1/runs/{run.run_id}"), 403)
    assert FunctionRun.objects.get(pk=run.pk).status == RunStatus.QUEUED


def test_session_unsafe_method_needs_csrf() -> None:
    run = make_run()
    client = user_client("django_inngest.cancel_functionrun", csrf=True)
    message = error_of(client.delete(f"/v1/runs/{run.run_id}"), 403)
    assert "CSRF" in message


def test_bearer_needs_no_csrf(api: APIClient) -> None:
    run = make_run()
    api.handler.enforce_csrf_checks = True
    assert api.delete(f"/v1/runs/{run.run_id}").status_code == 200


def test_unknown_query_params_are_checked_after_auth(anon: APIClient) -> None:
    error_of(anon.get("/v1/events?bogus=1"), 401)


# -- events ----------------------------------------------------------------------------------


def test_list_events(api: APIClient, schema: dict[str, Any]) -> None:
    [first] = send_events([{"name": "app/one", "data": {"a": 1}, "id": "sender-1", "v": "2"}])
    [second] = send_events([{"name": "app/two"}])
    response = api.get("/v1/events")
    assert_documented(schema, "/v1/events", "get", response)
    body = response.json()
    assert body["metadata"]["next_cursor"] is None
    assert body["metadata"]["cached_until"] is None
    assert body["metadata"]["fetched_at"].endswith("Z")
    items = body["data"]
    assert [item["internal_id"] for item in items] == [second, first]
    one = items[1]
    stored = Event.objects.get(pk=first)
    assert one == {
        "internal_id": first,
        "id": "sender-1",
        "name": "app/one",
        "data": {"a": 1},
        "user": {},
        "ts": stored.ts,
        "v": "2",
        "received_at": iso(stored.received_at),
    }
    # Without a sender id, `id` is the internal ID (as in Event.as_payload).
    assert items[0]["id"] == second


def test_filter_events_by_name_and_time(api: APIClient) -> None:
    old = make_event("app/a")
    Event.objects.filter(pk=old.pk).update(received_at=ago(hours=2))
    recent = make_event("app/a")
    make_event("app/b")

    def ids(query: str) -> list[str]:
        response = api.get(f"/v1/events?{query}")
        assert response.status_code == 200, response.content
        return [item["internal_id"] for item in response.json()["data"]]

    assert set(ids("name=app/a")) == {old.pk, recent.pk}
    assert ids("name=app/nothing") == []
    hour_ago = iso(ago(hours=1)).replace("Z", "%2B00:00")
    assert ids(f"name=app/a&received_after={hour_ago}") == [recent.pk]
    assert ids(f"name=app/a&received_before={iso(ago(hours=1))}") == [old.pk]


def test_paginate_events(api: APIClient, schema: dict[str, Any]) -> None:
    created = send_events([{"name": f"app/{i}"} for i in range(5)])  # one shared received_at
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        url = "/v1/events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = api.get(url)
        assert_documented(schema, "/v1/events", "get", response)
        body = response.json()
        seen += [item["internal_id"] for item in body["data"]]
        pages += 1
        cursor = body["metadata"]["next_cursor"]
        if cursor is None:
            break
        # Events arriving meanwhile do not shift later pages.
        send_events([{"name": "app/late"}])
    assert pages == 3
    assert sorted(seen) == sorted(created) and len(set(seen)) == 5


def test_default_and_max_limit(api: APIClient) -> None:
    send_events([{"name": "app/x"}] * 25)
    assert len(api.get("/v1/events").json()["data"]) == 20
    assert len(api.get("/v1/events?limit=100").json()["data"]) == 25


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WzEsMl0", "cursor"),  # valid base64 of [1,2]
        ("received_after=yesterday", "received_after"),
        ("received_after=2024-13-01T00:00:00Z", "received_after"),
        ("received_before=2024-01-01T00:00:00", "received_before"),  # no timezone
        ("received_before=2024-01-01", "received_before"),
        (
            "received_after=2024-01-02T00:00:00Z&received_before=2024-01-01T00:00:00Z",
            "received_after",
        ),
        ("name=" + "x" * 256, "name"),
        ("name=a%00b", "name"),  # PostgreSQL refuses NUL in text
        ("received_after=0001-01-01T00:00:00%2B14:00", "received_after"),  # before UTC year 1
        ("received_before=9999-12-31T23:59:59-12:00", "received_before"),
        (
            "cursor=WyIyMDI0LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIlx1MDAwMCJd",
            "cursor",
        ),  # a NUL primary key
        ("limit=1e2", "limit"),
        ("status=Running", "Unknown query parameter(s): status"),
        ("name=a&name=b", "given twice: name"),
    ],
)
def test_bad_event_list_params(
    api: APIClient, schema: dict[str, Any], query: str, fragment: str
) -> None:
    response = api.get(f"/v1/events?{query}")
    assert_documented(schema, "/v1/events", "get", response, 400)
    assert fragment in response.json()["error"]


def test_get_event(api: APIClient, schema: dict[str, Any]) -> None:
    event = make_event("app/x", data={"k": "v"})
    path = "/v1/events/{internal_id}"
    response = api.get(f"/v1/events/{event.pk}")
    assert_documented(schema, path, "get", response)
    assert response.json()["data"]["data"] == {"k": "v"}
    # ULIDs are case-insensitive.
    assert api.get(f"/v1/events/{event.pk.lower()}").status_code == 200
    response = api.get("/v1/events/not-a-ulid")
    assert_documented(schema, path, "get", response, 404)
    assert response.json()["error"] == "Invalid event ID: not-a-ulid"
    response = api.get("/v1/events/01HMRMPE5ZQ4AMNJ3S2N79QGRZ")
    assert_documented(schema, path, "get", response, 404)
    assert "01HMRMPE5ZQ4AMNJ3S2N79QGRZ" in response.json()["error"]
    assert "Unknown query parameter" in error_of(api.get(f"/v1/events/{event.pk}?x=1"), 400)


def test_event_runs(api: APIClient, schema: dict[str, Any]) -> None:
    event = make_event()
    run = make_run(event, fn_id="first")
    done = make_run(
        event,
        fn_id="second",
        status=RunStatus.COMPLETED,
        output={"ok": True},
        started_at=timezone.now(),
        ended_at=timezone.now(),
    )
    path = "/v1/events/{internal_id}/runs"
    response = api.get(f"/v1/events/{event.pk}/runs")
    assert_documented(schema, path, "get", response)
    items = {item["run_id"]: item for item in response.json()["data"]}
    assert set(items) == {run.run_id, done.run_id}
    assert items[done.run_id]["status"] == "Completed"
    assert items[done.run_id]["output"] == {"ok": True}
    assert items[run.run_id]["status"] == "Queued"
    assert items[run.run_id]["event_id"] == event.pk
    assert items[run.run_id]["function_id"] == f"{APP_ID}-first"
    assert_documented(schema, path, "get", api.get("/v1/events/bad/runs"), 404)
    assert_documented(
        schema, path, "get", api.get("/v1/events/01HMRMPE5ZQ4AMNJ3S2N79QGRZ/runs"), 404
    )


# -- runs ------------------------------------------------------------------------------------


def test_get_run(api: APIClient, schema: dict[str, Any]) -> None:
    event = make_event()
    run = make_run(event, status=RunStatus.RUNNING, wait_kind="sleep", started_at=timezone.now())
    response = api.get(f"/v1/runs/{run.run_id}")
    assert_documented(schema, "/v1/runs/{run_id}", "get", response)
    data = response.json()["data"]
    assert data["run_id"] == run.run_id
    assert data["status"] == "Running"
    assert data["wait_kind"] == "sleep"
    assert data["run_started_at"] == iso(run.created_at)
    assert data["ended_at"] is None and data["output"] is None
    assert data["event_id"] == event.pk
    assert data["cancel_source"] is None and data["original_run_id"] is None


def test_get_run_errors(api: APIClient, schema: dict[str, Any]) -> None:
    path = "/v1/runs/{run_id}"
    # A non-ULID is a run that cannot exist: 404, as Inngest answers for an unknown run.
    response = api.get("/v1/runs/123")
    assert_documented(schema, path, "get", response, 404)
    assert response.json()["error"] == "Invalid run ID: 123"
    response = api.get("/v1/runs/01HMRMPE5ZQ4AMNJ3S2N79QGRZ")
    assert_documented(schema, path, "get", response, 404)
    assert response.json()["error"] == "Unable to load function run: 01HMRMPE5ZQ4AMNJ3S2N79QGRZ"


def test_run_steps(api: APIClient, schema: dict[str, Any]) -> None:
    run = make_run(status=RunStatus.RUNNING)
    now = timezone.now()
    StepRun.objects.create(
        run=run,
        step_id="nap",
        position=1,
        kind="sleep",
        status="Sleeping",
        started_at=now,
        wake_at=now + timedelta(hours=1),
    )
    StepRun.objects.create(
        run=run,
        step_id="fetch",
        position=0,
        kind="run",
        status="Completed",
        attempts=2,
        started_at=now,
        ended_at=now,
        output={"rows": 3},
        attempt_log=[{"error": "boom"}, {"error": None}],
    )
    response = api.get(f"/v1/runs/{run.run_id}/steps")
    assert_documented(schema, "/v1/runs/{run_id}/steps", "get", response)
    steps = response.json()["data"]
    assert [s["step_id"] for s in steps] == ["fetch", "nap"]
    assert steps[0]["output"] == {"rows": 3} and steps[0]["attempts"] == 2
    assert steps[0]["attempt_log"] == [{"error": "boom"}, {"error": None}]
    assert steps[1]["wake_at"] == iso(now + timedelta(hours=1))
    assert_documented(schema, "/v1/runs/{run_id}/steps", "get", api.get("/v1/runs/x/steps"), 404)
    missing = api.get("/v1/runs/01HMRMPE5ZQ4AMNJ3S2N79QGRZ/steps")
    assert_documented(schema, "/v1/runs/{run_id}/steps", "get", missing, 404)


def test_cancel_run(api: APIClient, schema: dict[str, Any]) -> None:
    run = make_run()
    path = "/v1/runs/{run_id}"
    response = api.delete(f"/v1/runs/{run.run_id}?reason=user+asked")
    assert_documented(schema, path, "delete", response)
    assert response.json()["data"] == {"run_id": run.run_id, "status": "Cancelled"}
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert (run.cancel_source, run.cancel_reason) == (CancelSource.API, "user asked")
    # Idempotent.
    again = api.delete(f"/v1/runs/{run.run_id}")
    assert_documented(schema, path, "delete", again)
    data = api.get(f"/v1/runs/{run.run_id}").json()["data"]
    assert (data["cancel_source"], data["cancel_reason"]) == ("api", "user asked")


def test_cancel_ended_run_is_409(api: APIClient, schema: dict[str, Any]) -> None:
    run = make_run(status=RunStatus.COMPLETED, ended_at=timezone.now())
    response = api.delete(f"/v1/runs/{run.run_id}")
    assert_documented(schema, "/v1/runs/{run_id}", "delete", response, 409)
    assert response.json()["error"].startswith("Cannot cancel an ended run: ")
    assert FunctionRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED


def test_cancel_run_errors(api: APIClient, schema: dict[str, Any]) -> None:
    path = "/v1/runs/{run_id}"
    assert_documented(schema, path, "delete", api.delete("/v1/runs/nope"), 404)
    missing = api.delete("/v1/runs/01HMRMPE5ZQ4AMNJ3S2N79QGRZ")
    assert_documented(schema, path, "delete", missing, 404)
    assert missing.json()["error"] == "Unable to load function run: 01HMRMPE5ZQ4AMNJ3S2N79QGRZ"
    run = make_run()
    response = api.delete(f"/v1/runs/{run.run_id}?reason=" + "x" * 1001)
    assert "reason" in error_of(response, 400)
    assert FunctionRun.objects.get(pk=run.pk).status == RunStatus.QUEUED


@pytest.mark.usefixtures("isolated_registry")
def test_rerun(schema: dict[str, Any]) -> None:
    define_function("greet", "app/greet")
    [event_id] = send_events([{"name": "app/greet", "data": {"who": "ada"}}])
    original = FunctionRun.objects.get(event_id=event_id)
    error_of(
        user_client("django_inngest.view_functionrun").post(f"/v1/runs/{original.run_id}/rerun"),
        403,
    )
    client = user_client("django_inngest.rerun_functionrun", username="rerunner")
    response = client.post(f"/v1/runs/{original.run_id}/rerun")
    assert_documented(schema, "/v1/runs/{run_id}/rerun", "post", response)
    new_id = response.json()["data"]["run_id"]
    new = FunctionRun.objects.get(pk=new_id)
    assert (new.original_run_id, new.event_id, new.status) == (
        original.run_id,
        event_id,
        RunStatus.QUEUED,
    )
    shown = client.get(f"/v1/runs/{new_id}")
    error_of(shown, 403)  # rerun permission alone does not grant viewing


@pytest.mark.usefixtures("isolated_registry")
def test_rerun_errors(api: APIClient, schema: dict[str, Any]) -> None:
    path = "/v1/runs/{run_id}/rerun"
    run = make_run(fn_id="gone")  # no such function in the (empty) registry
    response = api.post(f"/v1/runs/{run.run_id}/rerun")
    assert_documented(schema, path, "post", response, 409)
    assert "no longer defined" in response.json()["error"]
    assert_documented(schema, path, "post", api.post("/v1/runs/bad/rerun"), 404)
    assert_documented(
        schema, path, "post", api.post("/v1/runs/01HMRMPE5ZQ4AMNJ3S2N79QGRZ/rerun"), 404
    )


# -- bulk cancellations ----------------------------------------------------------------------


def bulk_body(**fields: Any) -> dict[str, Any]:
    body = {"app_id": APP_ID, "function_id": "fn", "started_before": iso(timezone.now())}
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


def test_create_bulk_cancellation(api: APIClient, schema: dict[str, Any]) -> None:
    inside = make_run(make_event(data={"user": "a"}), created_at=ago(minutes=30))
    other_user = make_run(make_event(data={"user": "b"}), created_at=ago(minutes=30))
    too_old = make_run(make_event(data={"user": "a"}), created_at=ago(hours=3))
    ended = make_run(
        make_event(data={"user": "a"}), created_at=ago(minutes=30), status=RunStatus.COMPLETED
    )
    other_fn = make_run(make_event(data={"user": "a"}), fn_id="other", created_at=ago(minutes=30))
    body = bulk_body(
        started_after=iso(ago(hours=1)), name="cleanup", **{"if": "event.data.user == 'a'"}
    )
    response = api.post("/v1/cancellations", body, format="json")
    assert_documented(schema, "/v1/cancellations", "post", response)
    data = response.json()["data"]
    record = Cancellation.objects.get()
    assert data == {
        "id": record.pk,
        "created_at": iso(record.created_at),
        "name": "cleanup",
        "app_id": APP_ID,
        "function_id": f"{APP_ID}-fn",
        "started_after": body["started_after"],
        "started_before": body["started_before"],
        "if": "event.data.user == 'a'",
        "kind": "bulk_run",
        "cause": "API",
        "cancelled_runs": 1,
        "reason": None,
        "actor": "signing key",
    }
    statuses = {
        run.pk: FunctionRun.objects.get(pk=run.pk).status
        for run in (inside, other_user, too_old, ended, other_fn)
    }
    assert statuses == {
        inside.pk: RunStatus.CANCELLED,
        other_user.pk: RunStatus.QUEUED,
        too_old.pk: RunStatus.QUEUED,
        ended.pk: RunStatus.COMPLETED,
        other_fn.pk: RunStatus.QUEUED,
    }
    assert FunctionRun.objects.get(pk=inside.pk).cancellation_id == record.pk


def test_bulk_cancellation_accepts_composite_function_id(api: APIClient) -> None:
    run = make_run(created_at=ago(minutes=1))
    response = api.post("/v1/cancellations", bulk_body(function_id=f"{APP_ID}-fn"), format="json")
    assert response.status_code == 200, response.content
    # Accepted in either form; always answered in the full form, as runs are.
    assert response.json()["data"]["function_id"] == f"{APP_ID}-fn"
    assert response.json()["data"]["if"] is None
    assert response.json()["data"]["started_after"] is None
    assert FunctionRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (bulk_body(app_id=None), "app_id"),
        (bulk_body(app_id=""), "app_id"),
        (bulk_body(function_id=None), "function_id"),
        (bulk_body(function_id="missing"), "function_id"),
        (bulk_body(started_before=None), "started_before"),
        (bulk_body(started_before="yesterday"), "started_before"),
        (bulk_body(started_before=1700000000), "started_before"),
        (bulk_body(started_after="2024-01-01T00:00:00"), "started_after"),
        (bulk_body(name=5), "name"),
        (bulk_body(**{"if": 5}), "if"),
        (bulk_body(app_id="a\u0000b"), "app_id"),
        (bulk_body(function_id="\ud800"), "function_id"),
        (bulk_body(**{"if": "event.data.x == '\udc00'"}), "if"),
        (bulk_body(**{"if": "event.data.x =="}), "invalid expression"),
        (bulk_body(**{"if": "async.data.x == 1"}), "invalid expression"),
    ],
)
def test_bad_bulk_cancellations(
    api: APIClient, schema: dict[str, Any], body: dict[str, Any], fragment: str
) -> None:
    make_registration("fn")
    # json.dumps escapes what the test client's own renderer could not encode (surrogates).
    response = api.generic(
        "POST", "/v1/cancellations", json.dumps(body), content_type="application/json"
    )
    assert_documented(schema, "/v1/cancellations", "post", response, 400)
    assert fragment in response.json()["error"]
    assert not Cancellation.objects.exists()


def test_bulk_cancellation_window_rules(api: APIClient) -> None:
    make_registration("fn")
    future = bulk_body(started_before=iso(timezone.now() + timedelta(minutes=1)))
    assert "5 seconds" in error_of(api.post("/v1/cancellations", future, format="json"), 400)
    now = iso(timezone.now())
    inverted = bulk_body(started_before=now, started_after=now)
    assert "started_after" in error_of(api.post("/v1/cancellations", inverted, format="json"), 400)


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [("{broken", "application/json"), ("[1, 2]", "application/json"), ("a=b", "text/plain")],
)
def test_bulk_cancellation_bad_body(api: APIClient, payload: str, content_type: str) -> None:
    response = api.generic("POST", "/v1/cancellations", payload, content_type=content_type)
    assert response.status_code in (400, 415)
    error_of(response, response.status_code)


def test_bulk_cancellation_needs_cancel_permission() -> None:
    make_registration("fn")
    viewer = user_client("django_inngest.view_cancellation")
    error_of(viewer.post("/v1/cancellations", bulk_body(), format="json"), 403)
    canceller = user_client("django_inngest.cancel_functionrun", username="canceller")
    assert canceller.post("/v1/cancellations", bulk_body(), format="json").status_code == 200


def test_list_and_delete_cancellations(api: APIClient, schema: dict[str, Any]) -> None:
    run = make_run(created_at=ago(minutes=1))
    created = [
        api.post("/v1/cancellations", bulk_body(name=f"c{i}"), format="json").json()["data"]
        for i in range(3)
    ]
    response = api.get("/v1/cancellations?limit=2")
    assert_documented(schema, "/v1/cancellations", "get", response)
    body = response.json()
    assert [c["name"] for c in body["data"]] == ["c2", "c1"]
    assert body["metadata"]["next_cursor"]
    rest = api.get(f"/v1/cancellations?limit=2&cursor={body['metadata']['next_cursor']}").json()
    assert [c["name"] for c in rest["data"]] == ["c0"]
    assert rest["data"][0]["cancelled_runs"] == 1  # the first one cancelled the run
    assert rest["metadata"]["next_cursor"] is None

    path = "/v1/cancellations/{cancellation_id}"
    response = api.delete(f"/v1/cancellations/{created[0]['id']}")
    assert_documented(schema, path, "delete", response)
    assert response.json()["data"] == {"ok": True}
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.cancellation_id is None
    assert Cancellation.objects.count() == 2
    assert_documented(
        schema, path, "delete", api.delete(f"/v1/cancellations/{created[0]['id']}"), 404
    )
    assert_documented(schema, path, "delete", api.delete("/v1/cancellations/x"), 404)
    assert "limit" in error_of(api.get("/v1/cancellations?limit=x"), 400)
    assert "cursor" in error_of(api.get("/v1/cancellations?cursor=%%%"), 400)


def test_delete_cancellation_needs_delete_permission() -> None:
    make_registration("fn")
    record = Cancellation.objects.create(
        app_id=APP_ID,
        function_id=f"{APP_ID}-fn",
        started_before=timezone.now(),
        created_at=timezone.now(),
    )
    error_of(
        user_client("django_inngest.cancel_functionrun").delete(f"/v1/cancellations/{record.pk}"),
        403,
    )
    deleter = user_client("django_inngest.delete_cancellation", username="deleter")
    assert deleter.delete(f"/v1/cancellations/{record.pk}").status_code == 200
