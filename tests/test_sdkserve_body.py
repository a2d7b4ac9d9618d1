"""The call body built from cached parts is byte for byte the JCS of the whole request."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from django_inngest.engine.remote_body import call_body
from django_inngest.engine.remote_state import BodyParts, memo_map
from django_inngest.models import StepKind, StepRun, StepStatus
from django_inngest.sdk import wire
from django_inngest.sdk.signing import canonical_json

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TRIGGER = {
    "name": "app/é",
    "data": {"z": [1, 2.5, None, "\u2028\n"], "a": {"𝄞": True, "b": 10**20}},
    "id": "01J",
    "ts": 1,
    "user": {},
}


def step(position: int, name: str, **fields: Any) -> StepRun:
    defaults: dict[str, Any] = {"kind": StepKind.RUN, "status": StepStatus.COMPLETED}
    return StepRun(
        step_id=hashlib.sha1(name.encode()).hexdigest(),
        display_name=name,
        position=position,
        started_at=NOW,
        **{**defaults, **fields},
    )


STEPS = [
    step(0, "b", output={"data": 1, "ünï": "\x00"}),
    step(1, "a", output=[1.0, 1e21, -0.0]),
    step(2, "nap", kind=StepKind.SLEEP, output=None),
    step(3, "wait", kind=StepKind.WAIT, output=TRIGGER),
    step(4, "boom", status=StepStatus.FAILED, error={"name": "E", "message": "m", "stack": "s"}),
    step(5, "pending", status=StepStatus.RETRYING),
    step(6, "child", kind=StepKind.INVOKE, status=StepStatus.FAILED, error={
        "name": "InvokeTimeoutError", "message": "late", "error": "x"}),
]  # fmt: skip


@pytest.mark.parametrize("use_api", [False, True])
def test_the_cached_body_is_the_jcs_of_the_request(use_api: bool) -> None:
    ctx = wire.CallContext(run_id="01RUN", attempt=2, max_attempts=5, use_api=use_api)
    parts = BodyParts()
    built = call_body(parts, TRIGGER, STEPS, ctx)
    memos = memo_map(STEPS)
    expected = wire.CallRequest(
        event=TRIGGER, steps=memos, ctx=replace(ctx, stack=tuple(memos))
    ).to_payload()
    assert built == canonical_json(expected)
    assert call_body(parts, TRIGGER, STEPS, ctx) == built  # again, from the cache


def test_step_ids_that_are_not_sdk_hashes_take_the_general_path() -> None:
    odd = [replace_id(STEPS[0], "not-a-hash")]
    with pytest.raises(ValueError, match="hashed step ID"):
        call_body(BodyParts(), TRIGGER, odd, wire.CallContext(run_id="01RUN"))


def replace_id(row: StepRun, step_id: str) -> StepRun:
    row.step_id = step_id
    return row
