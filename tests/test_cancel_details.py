"""Who cancelled a run and why, from every surface; and the links between runs and the events
around them (cancelling event, function.cancelled and its cleanups, function.failed and
on_failure, invoke parent and child, the event a wait matched)."""

from __future__ import annotations

import getpass
import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_inngest import Cancel, Context, Event, Inngest, TriggerEvent, cancel_run
from django_inngest.models import Cancellation, FunctionRun, RunStatus, StepRun
from django_inngest.models import Event as StoredEvent
from django_inngest.signals import function_cancelled
from tests.api_fixtures import bearer_client, user_client

pytestmark = pytest.mark.django_db(transaction=True)

SEED_DATA_KEYS = {"error", "event", "events", "function_id", "run_id"}


@pytest.fixture
def app(isolated_registry: Any) -> Inngest:
    client = Inngest(app_id="details")

    @client.create_function(
        fn_id="importer",
        trigger=TriggerEvent(event="d/import"),
        cancel=[Cancel(event="d/stop", if_exp="async.data.id == event.data.id")],
    )
    def importer(ctx: Context) -> None:
        ctx.step.run("first", lambda: 1)
        ctx.step.sleep("nap", timedelta(minutes=10))

    @client.create_function(
        fn_id="cleanup",
        trigger=TriggerEvent(
            event="inngest/function.cancelled",
            expression="event.data.function_id == 'details-importer'",
        ),
    )
    def cleanup(ctx: Context) -> str:
        return str(ctx.event.data["_inngest"]["reason"])

    @client.create_function(fn_id="approver", trigger=TriggerEvent(event="d/request"))
    def approver(ctx: Context) -> bool:
        got = ctx.step.wait_for_event("approval", event="d/approved", timeout=timedelta(hours=1))
        return got is not None

    @client.create_function(fn_id="child", trigger=TriggerEvent(event="d/child"))
    def child(ctx: Context) -> int:
        return 2 * int(ctx.event.data["n"])

    @client.create_function(fn_id="parent", trigger=TriggerEvent(event="d/parent"))
    def parent(ctx: Context) -> int:
        return int(ctx.step.invoke("double", function=child, data={"n": 21}))

    def on_failure(ctx: Context) -> None:
        return None

    @client.create_function(
        fn_id="doomed", trigger=TriggerEvent(event="d/doomed"), retries=0, on_failure=on_failure
    )
    def doomed(ctx: Context) -> None:
        raise ValueError("nope")

    return client


def start(client: Inngest, name: str, **data: Any) -> FunctionRun:
    (event_id,) = client.send_sync(Event(name=name, data=data))
    return FunctionRun.objects.get(event_id=event_id, parent_run__isnull=True)


def run_page(client: Client, run: FunctionRun) -> str:
    url = reverse("admin:django_inngest_functionrun_change", args=(run.run_id,))
    return str(client.get(url).content.decode())


def event_page(client: Client, event_id: str) -> str:
    url = reverse("admin:django_inngest_event_change", args=(event_id,))
    return str(client.get(url).content.decode())


# -- the service, the signal and the system event ---------------------------------------------


def test_reason_actor_and_source_reach_the_run_the_signal_and_the_system_event(
    app: Inngest,
) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    function_cancelled.connect(receiver, dispatch_uid="test-cancel-details")
    try:
        run = start(app, "d/import", id="a")
        cancel_run(run.run_id, source="api", reason="customer asked", actor="alice")
    finally:
        function_cancelled.disconnect(dispatch_uid="test-cancel-details")
    run.refresh_from_db()
    assert (run.cancel_source, run.cancel_reason, run.cancel_actor) == (
        "api",
        "customer asked",
        "alice",
    )
    (signal,) = received
    assert {k: signal[k] for k in ("source", "reason", "actor", "cancel_event_id")} == {
        "source": "api",
        "reason": "customer asked",
        "actor": "alice",
        "cancel_event_id": None,
    }
    system = StoredEvent.objects.get(name="inngest/function.cancelled")
    # Inngest's fields are untouched; ours are under data._inngest only.
    assert set(system.data) == {*SEED_DATA_KEYS, "_inngest"}
    assert system.data["error"] == {
        "error": "function cancelled",
        "message": "function cancelled",
        "name": "Error",
    }
    assert system.data["_inngest"] == {
        "source": "api",
        "reason": "customer asked",
        "actor": "alice",
        "cancel_event_id": None,
        "cancellation_id": None,
    }
    # The cleanup function reads it.
    cleanup = FunctionRun.objects.get(function_id="details-cleanup")
    assert (cleanup.status, cleanup.output) == (RunStatus.COMPLETED, "customer asked")


def test_a_cancel_on_event_is_stored_on_the_run_and_linked_both_ways(
    app: Inngest, admin_client: Client
) -> None:
    run = start(app, "d/import", id="a")
    spared = start(app, "d/import", id="b")
    (stop_id,) = app.send_sync(Event(name="d/stop", data={"id": "a"}))
    run.refresh_from_db()
    spared.refresh_from_db()
    assert (run.status, spared.status) == (RunStatus.CANCELLED, RunStatus.RUNNING)
    assert (run.cancel_source, run.cancel_event_id, run.cancel_actor) == (
        "event",
        stop_id,
        f"event {stop_id}",
    )
    system = StoredEvent.objects.get(name="inngest/function.cancelled", external_id=run.run_id)
    assert system.data["_inngest"]["cancel_event_id"] == stop_id
    cleanup = FunctionRun.objects.get(function_id="details-cleanup")

    page = run_page(admin_client, run)
    stop_url = reverse("admin:django_inngest_event_change", args=(stop_id,))
    assert f'href="{stop_url}" class="inngest-cancel-event-link"' in page
    assert "received just before the run ended" not in page  # stored, not guessed
    system_url = reverse("admin:django_inngest_event_change", args=(system.pk,))
    assert f'href="{system_url}" class="inngest-system-event-link"' in page
    cleanup_url = reverse("admin:django_inngest_functionrun_change", args=(cleanup.pk,))
    assert f'href="{cleanup_url}" class="inngest-follow-up-run inngest-cleanup-run"' in page

    run_url = reverse("admin:django_inngest_functionrun_change", args=(run.pk,))
    # The stop event lists the run it cancelled (and not the spared one) ...
    stop_page = event_page(admin_client, stop_id)
    assert "runs it cancelled" in stop_page and run_url in stop_page
    assert spared.run_id not in stop_page
    # ... and the function.cancelled event names the run it is about and its cleanup run.
    system_page = event_page(admin_client, system.pk)
    assert "about run" in system_page and run_url in system_page and cleanup_url in system_page


def test_interrupted_steps_end_with_the_run(app: Inngest) -> None:
    run = start(app, "d/import", id="a")
    cancel_run(run.run_id)
    run.refresh_from_db()
    nap = StepRun.objects.get(run=run, step_id="nap")
    first = StepRun.objects.get(run=run, step_id="first")
    assert nap.status == "Sleeping" and nap.ended_at == run.ended_at
    assert first.ended_at is not None and first.ended_at < run.ended_at  # untouched


# -- the REST API ---------------------------------------------------------------------------


def test_rest_cancel_takes_a_reason_in_a_json_body_and_records_the_signing_key(
    app: Inngest,
) -> None:
    api = bearer_client()
    run = start(app, "d/import", id="a")
    response = api.delete(
        f"/v1/runs/{run.run_id}",
        data=json.dumps({"reason": "bad data"}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    data = api.get(f"/v1/runs/{run.run_id}").json()["data"]
    assert (data["cancel_source"], data["cancel_reason"], data["cancel_actor"]) == (
        "api",
        "bad data",
        "signing key",
    )
    assert data["cancel_event_id"] is None


def test_rest_cancel_records_the_session_user(app: Inngest) -> None:
    api = user_client(
        "django_inngest.view_functionrun", "django_inngest.cancel_functionrun", username="carol"
    )
    run = start(app, "d/import", id="a")
    assert api.delete(f"/v1/runs/{run.run_id}?reason=dup").status_code == 200
    run.refresh_from_db()
    assert (run.cancel_reason, run.cancel_actor) == ("dup", "carol")


@pytest.mark.parametrize(
    ("query", "body", "message"),
    [
        ("?reason=a", {"reason": "b"}, "reason: given in the query and in the body"),
        ("", ["reason"], "The body must be a JSON object"),
        ("", {"why": "x"}, "Unknown body field(s): why"),
        ("", {"reason": 5}, "reason: must be a string"),
        ("", {"reason": "x" * 1001}, "reason"),
    ],
)
def test_rest_cancel_refuses_a_bad_reason(
    app: Inngest, query: str, body: Any, message: str
) -> None:
    api = bearer_client()
    run = start(app, "d/import", id="a")
    response = api.delete(
        f"/v1/runs/{run.run_id}{query}", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_rest_cancel_accepts_the_same_reason_twice(app: Inngest) -> None:
    run = start(app, "d/import", id="a")
    response = bearer_client().delete(
        f"/v1/runs/{run.run_id}?reason=same",
        data=json.dumps({"reason": "same"}),
        content_type="application/json",
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.cancel_reason == "same"


def test_bulk_cancellation_reason_and_actor_reach_every_run(app: Inngest) -> None:
    runs = [start(app, "d/import", id=str(n)) for n in range(2)]
    before = (timezone.now() + timedelta(seconds=2)).isoformat()
    response = bearer_client().post(
        "/v1/cancellations",
        {
            "app_id": "details",
            "function_id": "importer",
            "started_before": before,
            "reason": "rollback of release 42",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"]["reason"] == "rollback of release 42"
    record = Cancellation.objects.get()
    assert (record.reason, record.actor) == ("rollback of release 42", "signing key")
    for run in runs:
        run.refresh_from_db()
        assert (run.cancel_source, run.cancel_reason, run.cancel_actor) == (
            "bulk",
            "rollback of release 42",
            "signing key",
        )
    # A run created later inside the window, caught by the check before its first step.
    late = start(app, "d/import", id="late")
    late.refresh_from_db()
    assert (late.status, late.cancel_reason, late.cancel_actor) == (
        RunStatus.CANCELLED,
        "rollback of release 42",
        "signing key",
    )


# -- the admin's bulk form and the CLI --------------------------------------------------------


def test_admin_bulk_form_takes_a_reason(app: Inngest, admin_client: Client) -> None:
    run = start(app, "d/import", id="a")
    before = timezone.localtime() + timedelta(seconds=2)
    data = {
        "function": "details-importer",
        "started_after": "",
        "started_before": before.strftime("%Y-%m-%dT%H:%M:%S"),
        "if_exp": "",
        "reason": "wrong list",
    }
    url = reverse("admin:django_inngest_cancellation_bulk_cancel")
    preview = admin_client.post(url, {**data, "preview": "Preview"})
    assert 'name="reason"' in preview.content.decode()
    key = preview.context["preview"]["key"]
    # The reason may be edited after the preview: it is not one of the criteria.
    admin_client.post(url, {**data, "reason": "wrong list!", "confirm": "x", "preview_key": key})
    run.refresh_from_db()
    assert (run.status, run.cancel_reason, run.cancel_actor) == (
        RunStatus.CANCELLED,
        "wrong list!",
        "admin",
    )
    record = Cancellation.objects.get()
    assert (record.reason, record.actor) == ("wrong list!", "admin")


def test_cli_reason_and_os_user(app: Inngest) -> None:
    run = start(app, "d/import", id="a")
    out = StringIO()
    call_command("inngest_cancel", run.run_id, "--reason", "maintenance", stdout=out)
    assert "Cancelled 1 run(s)." in out.getvalue()
    run.refresh_from_db()
    assert (run.cancel_source, run.cancel_reason, run.cancel_actor) == (
        "cli",
        "maintenance",
        f"cli:{getpass.getuser()}",
    )
    with pytest.raises(CommandError, match="--reason is longer than 1000"):
        call_command("inngest_cancel", run.run_id, "--reason", "x" * 1001)


def test_cli_bulk_reason(app: Inngest) -> None:
    run = start(app, "d/import", id="a")
    call_command(
        "inngest_cancel",
        "--app-id",
        "details",
        "--function-id",
        "importer",
        "--reason",
        "cleanup",
        stdout=StringIO(),
    )
    run.refresh_from_db()
    assert (run.cancel_source, run.cancel_reason) == ("bulk", "cleanup")
    assert run.cancel_actor == f"cli:{getpass.getuser()}"


# -- links ----------------------------------------------------------------------------------


def test_a_wait_stores_the_event_it_matched_and_the_admin_links_it(
    app: Inngest, admin_client: Client
) -> None:
    run = start(app, "d/request")
    (approved_id,) = app.send_sync(Event(name="d/approved", id="sender-approval-1"))
    step = StepRun.objects.get(run=run, step_id="approval")
    assert step.matched_event_id == approved_id
    page = run_page(admin_client, run)
    assert reverse("admin:django_inngest_event_change", args=(approved_id,)) in page
    event = event_page(admin_client, approved_id)
    assert "waits it resumed" in event
    assert reverse("admin:django_inngest_functionrun_change", args=(run.pk,)) in event
    api = bearer_client().get(f"/v1/runs/{run.run_id}/steps").json()["data"]
    assert [s["matched_event_id"] for s in api if s["step_id"] == "approval"] == [approved_id]


def test_invoke_step_links_its_child_run(app: Inngest, admin_client: Client) -> None:
    from django_inngest.testing import drain

    parent = start(app, "d/parent")
    drain()
    parent.refresh_from_db()
    child = FunctionRun.objects.get(parent_run=parent)
    assert (parent.status, parent.output) == (RunStatus.COMPLETED, 42)
    child_url = reverse("admin:django_inngest_functionrun_change", args=(child.pk,))
    assert f'href="{child_url}" class="inngest-invoked-run"' in run_page(admin_client, parent)
    parent_url = reverse("admin:django_inngest_functionrun_change", args=(parent.pk,))
    assert parent_url in run_page(admin_client, child)


def test_a_failed_run_links_its_function_failed_event_and_on_failure_run(
    app: Inngest, admin_client: Client
) -> None:
    run = start(app, "d/doomed")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    failed = StoredEvent.objects.get(name="inngest/function.failed", external_id=run.run_id)
    handler_run = FunctionRun.objects.get(event=failed)
    page = run_page(admin_client, run)
    failed_url = reverse("admin:django_inngest_event_change", args=(failed.pk,))
    assert f'href="{failed_url}" class="inngest-failed-event-link"' in page
    handler_url = reverse("admin:django_inngest_functionrun_change", args=(handler_run.pk,))
    assert f'href="{handler_url}" class="inngest-follow-up-run inngest-on-failure-run"' in page
    assert "about run" in event_page(admin_client, failed.pk)


# -- the indexes behind the links -------------------------------------------------------------


def plan(queryset: Any) -> str:
    from django.db import connection, transaction

    with transaction.atomic():
        if connection.vendor == "postgresql":
            # An empty table is cheaper to scan; what matters is that the index can serve it.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
        return str(queryset.explain())


def test_the_link_lookups_use_their_partial_indexes(app: Inngest) -> None:
    from django_inngest.admin.run_page import system_event_of

    run = start(app, "d/import", id="a")
    cancel_run(run.run_id)
    assert system_event_of(run, "inngest/function.cancelled") is not None
    system = StoredEvent.objects.filter(name="inngest/function.cancelled", external_id="X")
    assert "inngest_event_cancelled_of" in plan(system.order_by()[:1])
    failed = StoredEvent.objects.filter(name="inngest/function.failed", external_id="X")
    assert "inngest_event_failed_of" in plan(failed.order_by()[:1])
    assert "inngest_run_cancel_event" in plan(FunctionRun.objects.filter(cancel_event_id="X"))
    assert "inngest_step_matched_event" in plan(StepRun.objects.filter(matched_event_id="X"))
