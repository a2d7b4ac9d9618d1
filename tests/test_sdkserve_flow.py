"""SDK-served functions in the rest of the engine: parallel steps, invoke in both directions,
send_event, cancellation from every source (with the SDK's cleanup function), large state
through ``/v0``, and the admin."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from django_inngest import Context, Inngest, cancel_run
from django_inngest.engine import worker
from django_inngest.models import Event, FunctionRun, RunStatus, StepRun, StepStatus
from django_inngest.sdk import signing
from tests.helpers import make_due
from tests.sdkserve.app import SIGNING_KEY, probe
from tests.sdkserve.fixtures import Call, SdkServer

pytestmark = pytest.mark.django_db(transaction=True)


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def test_parallel_steps_get_one_call_each_then_one_follow_up(
    sdk_server: SdkServer, calls: list[Call]
) -> None:
    run = sdk_server.run("sdks/fanout")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == {"parallel": ["A", "B", "C"], "after": "after"}
    branches = {sha1(n) for n in "abc"}
    assert calls[0].outcome == "StepsReported['StepPlanned', 'StepPlanned', 'StepPlanned']"
    assert {c.target for c in calls[1:4]} == branches
    assert [c.target for c in calls[4:]] == [None, None]  # exactly one follow-up, then the end
    assert [c.outcome for c in calls[4:]] == ["StepsReported['StepRun']", "Completed"]
    assert sorted(probe.executions[run.run_id]) == ["a", "after", "b", "c"]


def test_a_failing_branch_holds_the_follow_up_until_its_retry_succeeds(
    sdk_server: SdkServer, calls: list[Call]
) -> None:
    run = sdk_server.run("sdks/fanout", flaky=True)
    rows = {s.display_name: s for s in StepRun.objects.filter(run=run)}
    assert {n: rows[n].status for n in "abc"} == {
        "a": StepStatus.COMPLETED,
        "b": StepStatus.RETRYING,
        "c": StepStatus.COMPLETED,
    }
    assert [c.target for c in calls].count(None) == 1  # no follow-up while b is pending
    make_due(run)
    assert worker.advance(run.run_id) == "completed"
    run.refresh_from_db()
    assert run.output == {"parallel": ["A", "B", "C"], "after": "after"}
    assert [(c.target, c.attempt) for c in calls[4:]] == [(sha1("b"), 1), (None, 0), (None, 0)]
    assert probe.count(run.run_id, "a") == probe.count(run.run_id, "c") == 1


def test_an_sdk_function_invokes_an_in_process_one(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/call")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == {"greeting": "hello sdk"}
    child = FunctionRun.objects.get(parent_run=run)
    assert (child.function_id, child.status) == ("testapp-hello", RunStatus.COMPLETED)
    assert child.event.name == "inngest/function.invoked"
    invoke = StepRun.objects.get(run=run)
    assert (invoke.display_name, invoke.kind, invoke.output) == ("greet", "invoke", "hello sdk")


def test_an_in_process_function_invokes_an_sdk_one(sdk_server: SdkServer) -> None:
    from django_inngest import TriggerEvent

    local = Inngest(app_id="local")

    @local.create_function(fn_id="parent", trigger=TriggerEvent(event="local/parent"))
    def parent(ctx: Context) -> Any:
        return ctx.step.invoke_by_id("call", app_id="sdks", function_id="child", data={"n": 21})

    try:
        run = sdk_server.run("local/parent")
    finally:
        local.registry.unregister(parent.id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == {"doubled": 42}
    child = FunctionRun.objects.get(parent_run=run)
    assert (child.function_id, child.status) == ("sdks-child", RunStatus.COMPLETED)


def test_send_event_goes_through_our_event_api_and_starts_runs(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/send", n=5)
    assert run.status == RunStatus.COMPLETED, run.error
    (sent_id,) = run.output
    sent = Event.objects.get(pk=sent_id)  # the SDK POSTed it to /e/<key>; we stored it
    assert (sent.name, sent.data) == ("sdks/child", {"n": 5})
    child = FunctionRun.objects.get(event=sent)
    assert (child.status, child.output) == (RunStatus.COMPLETED, {"doubled": 10})


def test_cancel_on_then_the_sdk_cleanup_function_runs(sdk_server: SdkServer) -> None:
    cancelled = sdk_server.run("sdks/import.requested", importId="imp-1")
    kept = sdk_server.run("sdks/import.requested", importId="imp-2")
    assert cancelled.wait_kind == kept.wait_kind == "sleep"
    sdk_server.emit("sdks/import.cancelled", importId="imp-1")
    cancelled.refresh_from_db()
    assert (cancelled.status, cancelled.cancel_source) == (RunStatus.CANCELLED, "event")
    notice = Event.objects.get(name="inngest/function.cancelled")
    assert (notice.external_id, notice.data["function_id"]) == (cancelled.run_id, "sdks-importer")
    sdk_server.drain()
    cleanup = FunctionRun.objects.get(function_id="sdks-cleanup")
    assert cleanup.status == RunStatus.COMPLETED, cleanup.error
    assert cleanup.output == {"cleaned": "imp-1", "run": cancelled.run_id}
    kept.refresh_from_db()
    assert kept.status == RunStatus.RUNNING
    make_due(kept)
    assert worker.advance(kept.run_id) == "completed"
    assert probe.executions[cancelled.run_id] == ["batch-1"]
    assert probe.executions[kept.run_id] == ["batch-1", "batch-2"]


def test_rest_delete_cancels_a_sleeping_sdk_run(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/import.requested", importId="imp-9")
    response = Client().delete(
        f"/v1/runs/{run.run_id}", headers={"Authorization": f"Bearer {SIGNING_KEY}"}
    )
    assert response.status_code == 200, response.content
    run.refresh_from_db()
    assert (run.status, run.cancel_source) == (RunStatus.CANCELLED, "api")
    sdk_server.drain()
    cleanup = FunctionRun.objects.get(function_id="sdks-cleanup")
    assert cleanup.output == {"cleaned": "imp-9", "run": run.run_id}
    make_due(run)
    assert worker.advance(run.run_id) == "skipped"  # its sleep's timer died with it


def test_a_cancel_mid_step_drops_the_late_result(sdk_server: SdkServer) -> None:
    run = sdk_server.send("sdks/slow")
    sdk_server.dispatched.clear()
    outcome: list[str] = []

    def advance() -> None:
        try:
            outcome.append(worker.advance(run.run_id))
        finally:
            connection.close()

    turn = threading.Thread(target=advance)
    turn.start()
    assert probe.arrived(run.run_id).wait(10), "the step never started"
    cancel_run(run.run_id, reason="changed my mind")
    probe.gate(run.run_id).set()  # the app finishes the step and answers: too late
    turn.join(30)
    assert outcome == ["abandoned"]
    assert not StepRun.objects.filter(run=run).exists()
    assert probe.executions[run.run_id] == ["blocked"]  # and nothing after it ran


def test_state_over_the_inline_limit_is_fetched_from_v0(
    sdk_server: SdkServer, calls: list[Call], settings: Any
) -> None:
    settings.DJANGO_INNGEST_SDK_INLINE_STATE_MAX_BYTES = 4096
    run = sdk_server.run("sdks/big", size=20_000)
    assert (run.status, run.output) == (RunStatus.COMPLETED, 20_000)
    assert [c.use_api for c in calls] == [False, True, True]


def test_v0_endpoints_need_the_signing_key(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/steps")
    http = Client()
    for path in (f"/v0/runs/{run.run_id}/actions", f"/v0/runs/{run.run_id}/batch"):
        assert http.get(path).status_code == 401
        wrong = {"Authorization": "Bearer " + "0" * 64}
        assert http.get(path, headers=wrong).status_code == 401
    bearer = {"Authorization": f"Bearer {signing.hashed_signing_key(SIGNING_KEY)}"}
    actions = http.get(f"/v0/runs/{run.run_id}/actions", headers=bearer).json()
    assert actions[sha1("s2")] == {"data": 2}
    assert len(actions) == 4
    (event,) = http.get(f"/v0/runs/{run.run_id}/batch", headers=bearer).json()
    assert event["name"] == "sdks/steps"
    assert http.get("/v0/runs/nope/actions", headers=bearer).status_code == 404


def test_the_admin_and_the_rest_api_show_step_names_not_hashes(
    sdk_server: SdkServer, admin_client: Client
) -> None:
    run = sdk_server.run("sdks/steps")
    html = admin_client.get(f"/admin/django_inngest/functionrun/{run.run_id}/change/").content
    page = html.decode()
    timeline = page.split('class="module inngest-timeline"')[1].split("</section>")[0]
    for name in ("s1", "s2", "s3"):
        assert f'<span class="inngest-timeline-name">{name}</span>' in timeline
    assert sha1("s2") not in timeline
    assert f'<code title="{sha1("s2")}">s2</code>' in page  # the hash only as a tooltip
    steps = (
        Client()
        .get(f"/v1/runs/{run.run_id}/steps", headers={"Authorization": f"Bearer {SIGNING_KEY}"})
        .json()["data"]
    )
    assert [(s["name"], s["step_id"]) for s in steps][:2] == [
        ("s1", sha1("s1")),
        ("s2", sha1("s2")),
    ]


def test_several_blocking_ops_in_one_answer_pause_once_until_all_settle(
    sdk_server: SdkServer, calls: list[Call]
) -> None:
    run = sdk_server.run("sdks/gather")
    assert calls[0].outcome == "StepsReported['Sleep', 'WaitForEvent', 'StepPlanned']"
    assert [c.target for c in calls[1:]] == [sha1("work")]  # the planned step, then a pause
    rows = {s.display_name: s for s in StepRun.objects.filter(run=run)}
    assert {n: rows[n].status for n in rows} == {
        "rest": StepStatus.SLEEPING,
        "signal": StepStatus.WAITING,
        "work": StepStatus.COMPLETED,
    }
    assert run.ready_at == rows["rest"].wake_at  # the earliest timer of the pending set
    sdk_server.emit("sdks/go")
    assert sdk_server.drain() == {run.run_id: "paused"}  # the sleep still pends: no call
    assert len(calls) == 2
    make_due(run)
    assert worker.advance(run.run_id) == "completed"
    run.refresh_from_db()
    assert run.output == [None, "sdks/go", "worked"]
    assert len(calls) == 3 and calls[-1].outcome == "Completed"


def test_invoking_a_function_nobody_serves_fails_that_step_only(sdk_server: SdkServer) -> None:
    run = sdk_server.run("sdks/lost")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output["name"] == "FunctionNotFoundError"
    assert "'nowhere-missing'" in run.output["message"]
