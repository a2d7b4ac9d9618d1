"""Syncing an app written with inngest-py 0.5.19 into our database, over real HTTP: our PUT,
its ``POST /fn/register`` (or its in-band answer), what we store, and what we refuse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from django_inngest.ids import new_ulid
from django_inngest.models import CronSchedule, FunctionRegistration, FunctionRun, RunStatus, SdkApp
from django_inngest.registry import registry
from django_inngest.sdk import signing
from django_inngest.sdk_apps import sync as app_sync
from tests.sdkserve.app import (
    BAD_FLOW_PATH,
    BAD_KEY_PATH,
    FLOW_PATH,
    OTHER_KEY,
    SIGNING_KEY,
    V2_PATH,
)
from tests.sdkserve.fixtures import SdkServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_out_of_band_sync_stores_the_app_and_its_functions(sdk_unsynced: SdkServer) -> None:
    outcome = sdk_unsynced.sync(in_band=False)
    assert outcome.ok, outcome.message
    assert (outcome.in_band, outcome.modified) == (False, True)
    app = SdkApp.objects.get()
    assert app.app_id == "sdks"
    assert app.url == sdk_unsynced.url("/api/inngest")
    assert (app.sdk, app.framework, app.version) == ("py:v0.5.19", "django", 1)
    steps = FunctionRegistration.objects.get(function_id="sdks-steps")
    assert (steps.sdk_app, steps.fn_id, steps.is_active) == (app, "steps", True)
    assert steps.config["steps"]["step"]["runtime"]["url"].endswith("fnId=sdks-steps&stepId=step")
    failure = FunctionRegistration.objects.get(function_id="sdks-doomed-failure")
    assert failure.config["triggers"][0]["event"] == "inngest/function.failed"
    again = sdk_unsynced.sync(in_band=False)
    assert (again.ok, again.modified) == (True, False)
    assert SdkApp.objects.get().version == 1


def test_in_band_sync_needs_no_call_back(sdk_unsynced: SdkServer) -> None:
    outcome = sdk_unsynced.sync()  # in-band is asked for by default
    assert (outcome.ok, outcome.in_band, outcome.modified) == (True, True, True), outcome
    app = SdkApp.objects.get()
    assert app.url == sdk_unsynced.url("/api/inngest")
    assert FunctionRegistration.objects.filter(sdk_app=app, is_active=True).count() == 18


@pytest.mark.parametrize("in_band", [True, False])
def test_an_app_holding_another_signing_key_cannot_sync(
    sdk_unsynced: SdkServer, in_band: bool
) -> None:
    outcome = sdk_unsynced.sync(BAD_KEY_PATH, in_band=in_band)
    assert not outcome.ok
    # In-band, the app refuses our signature; out-of-band, we refuse its Bearer.
    expected = "Unauthorized" if in_band else "Invalid or missing signing key"
    assert expected in outcome.message
    assert not SdkApp.objects.exists()


def test_flow_control_and_cron_triggers_sync_and_run_as_declared(sdk_unsynced: SdkServer) -> None:
    outcome = sdk_unsynced.sync(FLOW_PATH, in_band=False)
    assert outcome.ok, outcome.message
    limited = registry.get("sdks-flow-limited")
    assert limited is not None and limited.flow.concurrency is not None
    assert [(c.limit, c.key) for c in limited.flow.concurrency] == [(2, "event.data.id")]
    nightly = registry.get("sdks-flow-nightly")
    assert nightly is not None and [c.cron for c in nightly.crons] == ["0 3 * * *"]
    (schedule,) = CronSchedule.objects.filter(function_id="sdks-flow-nightly")
    assert schedule.next_tick_at.hour == 3 and schedule.next_tick_at > timezone.now()


def test_options_inngest_refuses_together_fail_the_sync_naming_them(
    sdk_unsynced: SdkServer,
) -> None:
    outcome = sdk_unsynced.sync(BAD_FLOW_PATH, in_band=False)
    assert not outcome.ok
    assert "sdks-bad-flow-batched" in outcome.message
    assert "Batching and cancellation are mutually exclusive" in outcome.message
    assert not SdkApp.objects.filter(app_id="sdks-bad-flow").exists()


def test_the_unsupported_list_is_one_set_to_grow_or_shrink(
    sdk_unsynced: SdkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_sync, "UNSUPPORTED_OPTIONS", frozenset({"cron", "concurrency"}))
    outcome = sdk_unsynced.sync(FLOW_PATH, in_band=False)
    assert not outcome.ok
    assert "'sdks-flow-limited' uses concurrency" in outcome.message
    assert "'sdks-flow-nightly' uses cron" in outcome.message
    assert not SdkApp.objects.exists()


def test_a_resync_replaces_the_definition_and_removed_functions_stop_starting_runs(
    sdk_server: SdkServer,
) -> None:
    assert sdk_server.run("sdks/steps").status == RunStatus.COMPLETED
    outcome = sdk_server.sync(V2_PATH, in_band=False)
    assert (outcome.ok, outcome.modified) == (True, True), outcome.message
    app = SdkApp.objects.get()
    assert (app.url, app.version) == (sdk_server.url(V2_PATH), 2)
    active = set(
        FunctionRegistration.objects.filter(sdk_app=app, is_active=True).values_list(
            "function_id", flat=True
        )
    )
    assert active == {"sdks-steps"}
    steps = registry.get("sdks-steps")
    assert steps is not None and steps.retry_limit == 5
    for gone in ("sdks/steps", "sdks/flaky"):
        sdk_server.emit(gone)
    assert not FunctionRun.objects.filter(function_id="sdks-flaky").exists()
    assert FunctionRun.objects.filter(function_id="sdks-steps").count() == 1  # the first one
    run = sdk_server.run("sdks/steps.v2")
    assert (run.status, run.output) == (RunStatus.COMPLETED, "v2")  # called at the new URL
    back = sdk_server.sync(in_band=False)
    assert back.ok and SdkApp.objects.get().version == 3
    assert sdk_server.run("sdks/flaky", failures=0).status == RunStatus.COMPLETED


def test_a_sync_elsewhere_is_seen_here_through_the_stamp(
    sdk_server: SdkServer, settings: Any
) -> None:
    settings.DJANGO_INNGEST_SDK_CATALOG_REFRESH_SECONDS = 3600
    assert registry.get("sdks-steps") is not None  # loaded; next look in an hour
    # Another process syncs: rows change and the app gets a new generation; no local signal.
    row = FunctionRegistration.objects.get(function_id="sdks-child")
    FunctionRegistration.objects.create(
        function_id="sdks-newcomer",
        app_id="sdks",
        fn_id="newcomer",
        name="newcomer",
        config={**row.config, "id": "sdks-newcomer", "name": "newcomer"},
        sdk_app=row.sdk_app,
    )
    SdkApp.objects.update(generation=new_ulid())
    found = registry.get("sdks-newcomer")  # a miss looks at once: runs never wait for it
    assert found is not None and found.fn_id == "newcomer"
    FunctionRegistration.objects.filter(function_id="sdks-newcomer").update(is_active=False)
    SdkApp.objects.update(generation=new_ulid())
    assert "sdks-newcomer" in {f.id for f in registry.triggerable()}  # within the period
    settings.DJANGO_INNGEST_SDK_CATALOG_REFRESH_SECONDS = 0
    assert "sdks-newcomer" not in {f.id for f in registry.triggerable()}


def test_a_server_kind_mismatch_is_reported(sdk_unsynced: SdkServer, settings: Any) -> None:
    settings.DJANGO_INNGEST_SDK_MODE = "dev"
    outcome = sdk_unsynced.sync()
    assert not outcome.ok and "server_kind_mismatch" in outcome.message


# -- POST /fn/register directly -------------------------------------------------------------


def register_body(url: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "appname": "fake",
        "url": url,
        "deploy_type": "ping",
        "framework": "django",
        "sdk": "py:v0.5.19",
        "v": "0.1",
        "functions": [
            {
                "id": "fake-go",
                "name": "go",
                "triggers": [{"event": "fake/go"}],
                "steps": {
                    "step": {
                        "id": "step",
                        "name": "step",
                        "runtime": {"type": "http", "url": f"{url}?fnId=fake-go&stepId=step"},
                    }
                },
            }
        ],
    }
    body.update(changes)
    return body


def register(body: Any, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Client().post("/fn/register", raw, content_type="application/json", headers=headers)


BEARER = {"Authorization": f"Bearer {signing.hashed_signing_key(SIGNING_KEY)}"}


def test_register_needs_the_signing_key_and_answers_json(sdk_allowed: None) -> None:
    body = register_body("http://localhost:8000/api/inngest")
    for headers in ({}, {"Authorization": "Bearer " + "0" * 64}, {"Authorization": "Basic x"}):
        response = register(body, **headers)
        assert response.status_code == 401
        assert response.json() == {"error": "Invalid or missing signing key"}
    other = {"Authorization": f"Bearer {signing.hashed_signing_key(OTHER_KEY)}"}
    assert register(body, **other).status_code == 401
    assert register(body, Authorization=f"Bearer {SIGNING_KEY}").status_code == 200  # raw key
    assert register(body, **BEARER).json() == {
        "ok": True,
        "modified": False,
        "app_id": "fake",
        "sync_id": SdkApp.objects.get().generation,
    }


def test_register_in_dev_mode_needs_no_key(sdk_allowed: None, settings: Any) -> None:
    settings.DJANGO_INNGEST_SDK_MODE = "dev"
    response = register(register_body("http://localhost:8000/api/inngest"))
    assert response.status_code == 200
    assert response.json()["ok"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "body: is not valid JSON"),
        ({"appname": "fake"}, "url: must be a non-empty string"),
        (
            register_body("http://localhost:8000/api/inngest", functions=[{"id": "fake-x"}]),
            "functions[0] (fake-x).triggers: must be a non-empty list",
        ),
        (
            register_body("http://localhost:8000/a", appname="other"),
            "'fake-go' must start with 'other-'",
        ),
    ],
)
def test_register_names_what_is_wrong(sdk_allowed: None, body: Any, message: str) -> None:
    response = register(body, **BEARER)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_register_refuses_bad_cel_and_code_function_ids(sdk_allowed: None) -> None:
    url = "http://localhost:8000/api/inngest"
    bad_cel = register_body(url)
    bad_cel["functions"][0]["triggers"][0]["expression"] = "event.data.x =="
    response = register(bad_cel, **BEARER)
    assert response.status_code == 400
    assert "triggers[0].expression is not valid CEL" in response.json()["error"]
    taken = register_body(url, appname="testapp")
    taken["functions"][0]["id"] = "testapp-hello"  # tests/testapp defines it in code
    response = register(taken, **BEARER)
    assert response.status_code == 400
    assert "is a function defined in this project's code" in response.json()["error"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/api", "not in the allowed hosts"),
        ("http://metadata.example.com/api", "not in the allowed hosts"),
    ],
)
def test_register_refuses_urls_workers_may_not_call(
    sdk_allowed: None, url: str, reason: str
) -> None:
    response = register(register_body(url), **BEARER)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not SdkApp.objects.exists()


def test_register_refuses_a_private_address_even_for_an_allowed_host(settings: Any) -> None:
    settings.DJANGO_INNGEST_SDK_ALLOWED_HOSTS = ["*"]  # any host, but only public addresses
    response = register(register_body("http://127.0.0.1:8000/api/inngest"), **BEARER)
    assert response.status_code == 400
    assert "non-public address" in response.json()["error"]


def test_an_sdk_functions_runs_are_gated_by_its_concurrency_limit(
    sdk_unsynced: SdkServer,
) -> None:
    assert sdk_unsynced.sync(FLOW_PATH, in_band=False).ok
    for _ in range(2):
        sdk_unsynced.emit("flow/limited", id="acct-1")
    runs = list(FunctionRun.objects.filter(function__function_id="sdks-flow-limited"))
    assert len(runs) == 2
    assert all(r.gated and r.gates["concurrency"][0]["label"] == "acct-1" for r in runs)
    assert all(r.gates["concurrency"][0]["limit"] == 2 for r in runs)
    sdk_unsynced.drain()
    statuses = FunctionRun.objects.filter(function__function_id="sdks-flow-limited")
    assert set(statuses.values_list("status", flat=True)) == {RunStatus.COMPLETED}
