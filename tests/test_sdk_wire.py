"""Call requests and memos (django_inngest.sdk.wire), driven against the real inngest-py.

Each function of tests/sdkapp is run by hand, the way the engine will run it: build a body,
sign it, POST it to ``inngest.django.serve``, parse the answer, store the memo, POST again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from inngest._internal import transforms

from django_inngest.sdk import responses, signing, wire
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.responses import (
    Completed,
    FunctionError,
    InvokeFunction,
    Sleep,
    StepError,
    StepFailed,
    StepPlanned,
    StepRun,
    StepsReported,
    WaitForEvent,
)
from tests.sdkapp.capture import CaptureServer
from tests.sdkapp.fixtures import SdkApp
from tests.sdkapp.functions import SIGNING_KEY, WAKE_AT
from tests.sdkapp.harness import ASYNC_PATH, Answer, Driver, event, fn_id, post

OpT = TypeVar("OpT")


def only_op(answer: Answer, kind: type[OpT]) -> OpT:
    op = any_op(answer)
    assert isinstance(op, kind), op
    return op


def any_op(answer: Answer) -> responses.Op:
    outcome = answer.outcome
    assert isinstance(outcome, StepsReported), (answer.status, answer.body)
    # Every answer to a signed request is signed back, over the raw bytes.
    assert signing.verify_response(
        answer.body, answer.headers.get("x-inngest-signature"), [SIGNING_KEY]
    )
    [op] = outcome.ops
    return op


# --- step IDs ---------------------------------------------------------------------------------


def test_step_id_hashes_are_the_sdks() -> None:
    assert wire.hash_step_id("a") == transforms.hash_step_id("a")
    assert wire.hash_step_id("a", 1) == transforms.hash_step_id("a:1")
    assert wire.hash_step_id("a", 1).startswith("de89bf")  # the reference's live capture
    counter = wire.StepIdCounter()
    assert [counter.next(x) for x in ("a", "b", "a", "a")] == [
        wire.hash_step_id("a"),
        wire.hash_step_id("b"),
        wire.hash_step_id("a", 1),
        wire.hash_step_id("a", 2),
    ]
    with pytest.raises(SdkProtocolError, match="occurrence"):
        wire.hash_step_id("a", -1)


# --- memos and the body -----------------------------------------------------------------------


def test_memo_builders_produce_exactly_the_accepted_shapes() -> None:
    assert wire.memo_data({"data": 1}) == {"data": {"data": 1}}
    assert wire.memo_error("ValueError", "bad") == {
        "error": {"name": "ValueError", "message": "bad"}
    }
    assert wire.memo_error("E", "m", "tb") == {
        "error": {"name": "E", "message": "m", "stack": "tb"}
    }
    assert wire.memo_sleep_woken() is None
    assert wire.memo_wait_timed_out() is None
    assert wire.memo_invoke_timed_out() == {
        "error": {
            "name": "InngestInvokeTimeoutError",
            "message": "Timed out waiting for invoked function to complete",
        }
    }
    assert wire.memo_wait_matched({"name": "x", "data": None, "ts": 5.0}) == {
        "name": "x",
        "data": {},
        "id": "",
        "ts": 5,
    }


@pytest.mark.parametrize(
    ("memo", "field"),
    [
        ({"error": {"name": "E", "message": 3}}, "steps['%s'].error.message"),
        ({"error": {"name": "", "message": "m"}}, "steps['%s'].error.name"),
        ({"error": {"name": "E", "message": "m", "code": "x"}}, "steps['%s'].error"),
        ({"error": "boom"}, "steps['%s'].error"),
        ({"data": 1, "error": None}, "steps['%s']"),
        ({"output": 1}, "steps['%s']"),
        ({}, "steps['%s']"),
        ([1], "steps['%s']"),
        ({"name": "evt", "ts": 1.5}, "steps['%s'].ts"),
        ({"name": "evt", "data": []}, "steps['%s'].data"),
    ],
)
def test_memos_the_sdk_would_misread_are_refused(memo: Any, field: str) -> None:
    step = wire.hash_step_id("a")
    request = wire.CallRequest(
        event=event("sdk/flow"), steps={step: memo}, ctx=wire.CallContext(run_id="r")
    )
    with pytest.raises(SdkProtocolError) as caught:
        request.to_payload()
    assert caught.value.field == (field % step if "%s" in field else field)


def test_call_request_payload() -> None:
    a = wire.hash_step_id("a")
    payload = wire.CallRequest(
        event={"name": "sdk/flow", "data": None, "ts": 7, "user": {}},
        steps={a: wire.memo_data(1)},
        ctx=wire.CallContext(run_id="run-1", attempt=2, max_attempts=3, stack=(a,)),
    ).to_payload()
    trigger = {"name": "sdk/flow", "data": {}, "id": "", "ts": 7, "user": {}}
    assert payload == {
        "event": trigger,
        "events": [trigger],
        "steps": {a: {"data": 1}},
        "use_api": False,
        "ctx": {
            "run_id": "run-1",
            "attempt": 2,
            "max_attempts": 3,
            "disable_immediate_execution": False,
            "use_api": False,
            "stack": {"stack": [a], "current": 1},
        },
        "version": 2,
    }
    via_api = wire.CallRequest(
        event=event("sdk/flow"),
        steps={a: None},
        ctx=wire.CallContext(run_id="r", use_api=True),
    ).to_payload()
    assert (via_api["events"], via_api["steps"], via_api["use_api"]) == ([], {}, True)


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"event": {"data": {}}}, "event.name"),
        ({"event": {"name": "e", "ts": 1.5}}, "event.ts"),
        ({"event": {"name": "e", "id": 3}}, "event.id"),
        ({"event": "e"}, "event"),
        ({"events": [{"name": "e"}, {"name": ""}]}, "events[1].name"),
        ({"steps": {"not-a-hash": None}}, "steps['not-a-hash']"),
        ({"ctx": wire.CallContext(run_id="")}, "ctx.run_id"),
        ({"ctx": wire.CallContext(run_id="r", attempt=-1)}, "ctx.attempt"),
        ({"ctx": wire.CallContext(run_id="r", max_attempts=0)}, "ctx.max_attempts"),
        ({"ctx": wire.CallContext(run_id="r", use_api=1)}, "ctx.use_api"),  # type: ignore[arg-type]
        ({"ctx": wire.CallContext(run_id="r", stack=("x",))}, "ctx.stack.stack[0]"),
    ],
)
def test_call_request_errors_name_the_field(request_kwargs: dict[str, Any], field: str) -> None:
    kwargs: dict[str, Any] = {"event": event("e"), "ctx": wire.CallContext(run_id="r")}
    kwargs.update(request_kwargs)
    with pytest.raises(SdkProtocolError) as caught:
        wire.CallRequest(**kwargs).to_payload()
    assert caught.value.field == field


def test_call_url_targets_a_step_and_keeps_the_rest() -> None:
    registered = "https://app.example.com/api/inngest?fnId=app-flow&stepId=step"
    a = wire.hash_step_id("a")
    assert wire.call_url(registered) == registered
    assert (
        wire.call_url(registered, a)
        == f"https://app.example.com/api/inngest?fnId=app-flow&stepId={a}"
    )
    with pytest.raises(SdkProtocolError, match="stepId"):
        wire.call_url(registered, "a")
    with pytest.raises(SdkProtocolError, match="url"):
        wire.call_url("/api/inngest?fnId=x")


# --- whole runs against inngest-py ------------------------------------------------------------


def test_a_function_driven_by_hand_from_first_step_to_completion(
    sdk_app: SdkApp, capture_server: CaptureServer
) -> None:
    run = Driver(sdk_app.http, fn_id("flow"), event("sdk/flow", {"go": True, "id": 7}))
    before = datetime.now(UTC)

    first = only_op(run.call(), StepRun)
    assert first == StepRun(id=wire.hash_step_id("a"), display_name="a", data={"n": 1})
    run.memoize(first.id, first.to_memo())

    repeated = only_op(run.call(), StepRun)  # the same user ID, so the SDK hashes "a:1"
    assert repeated == StepRun(id=wire.hash_step_id("a", 1), display_name="a", data={"n": 2})
    run.memoize(repeated.id, repeated.to_memo())

    nap = only_op(run.call(), Sleep)
    assert isinstance(nap, Sleep) and nap.id == wire.hash_step_id("nap")
    assert before + timedelta(minutes=5) - timedelta(seconds=1) <= nap.until
    assert nap.until <= datetime.now(UTC) + timedelta(minutes=5)
    run.memoize(nap.id, wire.memo_sleep_woken())

    until = only_op(run.call(), Sleep)
    assert until == Sleep(id=wire.hash_step_id("until"), display_name="until", until=WAKE_AT)
    run.memoize(until.id, wire.memo_sleep_woken())

    wait = only_op(run.call(), WaitForEvent)
    assert wait == WaitForEvent(
        id=wire.hash_step_id("wait"),
        display_name="wait",
        event="sdk/approved",
        if_exp="async.data.id == event.data.id",
        timeout=timedelta(hours=1),
    )
    approval = {"name": "sdk/approved", "data": {"id": 7, "by": "ann"}, "id": "E2", "ts": 2}
    run.memoize(wait.id, wire.memo_wait_matched(approval))

    invoke = only_op(run.call(), InvokeFunction)
    assert invoke == InvokeFunction(
        id=wire.hash_step_id("child"),
        display_name="child",
        function_id="sdkapp-child",
        data={"n": 2},
        version=None,
        timeout=None,
    )
    run.memoize(invoke.id, wire.memo_invoke_finished({"doubled": 4}))

    emit = only_op(run.call(), StepRun)  # send_event is a step.run whose body POSTs /e/<key>
    assert emit == StepRun(id=wire.hash_step_id("emit"), display_name="emit", data=["evt-0"])
    [sent] = capture_server.matching("/e/test-event-key")
    assert [(e["name"], e["data"]) for e in sent.json()] == [("sdk/emitted", {"n": 2})]
    run.memoize(emit.id, emit.to_memo())

    planned = run.call().outcome
    assert planned == StepsReported(
        ops=(
            StepPlanned(id=wire.hash_step_id("p1"), display_name="p1", parallel_mode="wait"),
            StepPlanned(id=wire.hash_step_id("p2"), display_name="p2", parallel_mode="wait"),
        )
    )
    p1 = only_op(run.call(step_id=wire.hash_step_id("p1"), force_plan=True), StepRun)
    assert p1 == StepRun(id=wire.hash_step_id("p1"), display_name="p1", data="one")
    run.memoize(p1.id, p1.to_memo())
    # A discovery while p2 is still pending re-plans it rather than running it inline.
    assert only_op(run.call(force_plan=True), StepPlanned) == planned.ops[1]
    p2 = only_op(run.call(step_id=wire.hash_step_id("p2"), force_plan=True), StepRun)
    run.memoize(p2.id, p2.to_memo())

    done = run.call()
    assert done.outcome == Completed(
        output={
            "first": {"n": 1},
            "second": {"n": 2},
            "approved_by": "ann",
            "doubled": {"doubled": 4},
            "sent": ["evt-0"],
            "parallel": ["one", "two"],
        }
    )
    assert signing.verify_response(done.body, done.headers["x-inngest-signature"], [SIGNING_KEY])


def test_timed_out_wait_and_invoke_reach_user_code(sdk_app: SdkApp) -> None:
    run = Driver(sdk_app.http, fn_id("flow"), event("sdk/flow", {"id": 7}))
    for _ in range(4):
        op = any_op(run.call())
        run.memoize(op.id, op.to_memo() if isinstance(op, StepRun) else None)
    wait = only_op(run.call(), WaitForEvent)
    assert isinstance(wait, WaitForEvent)
    run.memoize(wait.id, wire.memo_wait_timed_out())
    invoke = only_op(run.call(), InvokeFunction)  # the None approval did not break the function
    assert isinstance(invoke, InvokeFunction)
    run.memoize(invoke.id, wire.memo_invoke_timed_out())
    failed = run.call().outcome  # flow does not catch it: the run fails, for good
    assert isinstance(failed, FunctionError)
    assert (failed.retriable, failed.error.code) == (False, "step_errored")
    assert failed.error.message == wire.INVOKE_TIMEOUT_ERROR_MESSAGE


def test_race_mode_is_reported_on_each_planned_step(sdk_app: SdkApp) -> None:
    outcome = Driver(sdk_app.http, fn_id("race"), event("sdk/race")).call().outcome
    assert isinstance(outcome, StepsReported)
    assert [(op.display_name, getattr(op, "parallel_mode", None)) for op in outcome.ops] == [
        ("r1", "race"),
        ("r2", "race"),
    ]


def test_a_failing_step_errors_then_fails_and_its_error_memo_raises_in_user_code(
    sdk_app: SdkApp,
) -> None:
    run = Driver(sdk_app.http, fn_id("failing-step"), event("sdk/fail"), max_attempts=2)
    boom = wire.hash_step_id("boom")

    first = only_op(run.call(attempt=0), StepError)
    assert isinstance(first, StepError) and first.id == boom
    assert (first.error.name, first.error.message) == ("ValueError", "kaput")
    assert first.error.stack and "kaput" in first.error.stack

    last = only_op(run.call(attempt=1), StepFailed)  # attempt + 1 == max_attempts: the SDK gives up
    assert isinstance(last, StepFailed) and last.id == boom
    run.memoize(boom, last.error.to_memo())

    caught = run.call().outcome
    assert caught == Completed(output={"caught": True, "name": "ValueError", "message": "kaput"})


def test_an_error_memo_with_a_stray_key_would_reach_user_code_as_data(sdk_app: SdkApp) -> None:
    # The trap normalise_memo guards against, shown on the real SDK with a hand-made body.
    boom = wire.hash_step_id("boom")
    memo = {"error": {"name": "ValueError", "message": "kaput"}, "status": "failed"}
    with pytest.raises(SdkProtocolError):
        wire.normalise_memo(memo, field="memo")
    payload = Driver(sdk_app.http, fn_id("failing-step"), event("sdk/fail")).request().to_payload()
    payload["steps"] = {boom: memo}
    signed = signing.sign_payload(payload, SIGNING_KEY)
    target = f"/api/inngest?fnId={fn_id('failing-step')}&stepId=step"
    answer = post(sdk_app.http, target, signed.body, signature=signed.signature)
    assert answer.outcome == Completed(output={"caught": False, "value": memo})


def test_non_retriable_and_retry_after_errors(sdk_app: SdkApp) -> None:
    no_retry = Driver(sdk_app.http, fn_id("non-retriable"), event("sdk/nr")).call()
    outcome = no_retry.outcome
    assert isinstance(outcome, FunctionError)
    assert (outcome.status, outcome.retriable, outcome.retry_at) == (500, False, None)
    assert (outcome.error.name, outcome.error.message) == ("NonRetriableError", "not today")
    assert outcome.error.code == "non_retriable_error"

    later = Driver(sdk_app.http, fn_id("retry-after"), event("sdk/ra")).call().outcome
    assert isinstance(later, FunctionError)
    assert (later.retriable, later.retry_at, later.error.code) == (
        True,
        WAKE_AT,
        "retry_after_error",
    )


def test_an_async_function(sdk_app: SdkApp, capture_server: CaptureServer) -> None:
    run = Driver(sdk_app.http, fn_id("async-flow"), event("sdk/async"), path=ASYNC_PATH)
    fetch = only_op(run.call(), StepRun)
    assert fetch == StepRun(id=wire.hash_step_id("fetch"), display_name="fetch", data={"ok": True})
    run.memoize(fetch.id, fetch.to_memo())
    rest = only_op(run.call(), Sleep)
    assert isinstance(rest, Sleep) and rest.display_name == "rest"
    run.memoize(rest.id, wire.memo_sleep_woken())
    emit = only_op(run.call(), StepRun)
    assert isinstance(emit, StepRun) and emit.data == ["evt-0"]
    run.memoize(emit.id, emit.to_memo())
    assert run.call().outcome == Completed(output={"got": {"ok": True}, "sent": ["evt-0"]})
    assert len(capture_server.matching("/e/")) == 1


def test_what_the_sdk_refuses_in_a_body(sdk_app: SdkApp) -> None:
    """Why the builders are strict: each of these reaches the SDK as a 500, never a result."""
    base = Driver(sdk_app.http, fn_id("child"), event("sdk/child", {"n": 1})).request().to_payload()
    target = f"/api/inngest?fnId={fn_id('child')}&stepId=step"

    def answer(mutate: Any) -> responses.CallOutcome:
        payload = json.loads(json.dumps(base))
        mutate(payload)
        signed = signing.sign_payload(payload, SIGNING_KEY)
        return post(sdk_app.http, target, signed.body, signature=signed.signature).outcome

    assert answer(lambda p: None) == Completed(output={"doubled": 2})
    for mutate in (
        lambda p: p["event"].update(ts=1.5),  # pydantic strict: not an int
        lambda p: p.pop("use_api"),
        lambda p: p["ctx"].pop("stack"),
        lambda p: p.pop("events"),  # "events not in request"
    ):
        outcome = answer(mutate)
        assert isinstance(outcome, FunctionError) and outcome.status == 500, outcome

    unknown = Driver(sdk_app.http, "sdkapp-nope", event("x")).call().outcome
    assert isinstance(unknown, FunctionError) and unknown.error.code == "function_not_found"
