"""The JCS body of a call request, from parts canonicalised once per turn.

Every call carries every settled memo, and JCS in Python is slow: canonicalising the whole
body again for each of a run's calls made each call O(steps) work. JCS composes (an object is
its members sorted by key, each value canonical, no whitespace), so the trigger and each
settled memo (which never changes) are canonicalised once per turn and joined. The result is
byte for byte ``canonical_json(CallRequest(...).to_payload())``: the test suite checks it, and
any step ID that is not a plain SDK hash takes that general path instead.
"""

from __future__ import annotations

import re
from dataclasses import replace

from django_inngest.engine.remote_state import SETTLED, BodyParts, memo_of
from django_inngest.models import StepRun
from django_inngest.sdk import wire
from django_inngest.sdk.signing import canonical_json

_HASHED = re.compile(r"[0-9a-f]{40}")


def call_body(
    parts: BodyParts,
    trigger: wire.JSON,
    steps: list[StepRun],
    ctx: wire.CallContext,
) -> bytes:
    """The request's JCS bytes: ``steps`` are the run's memo rows (the settled ones are sent,
    in the order they ran); ``ctx.stack`` is filled in here."""
    settled = sorted((s for s in steps if s.status in SETTLED), key=lambda s: s.position)
    ctx = replace(ctx, stack=tuple(s.step_id for s in settled))
    if not all(_HASHED.fullmatch(s.step_id) for s in settled):
        memos = {s.step_id: memo_of(s) for s in settled}
        request = wire.CallRequest(event=trigger, steps=memos, ctx=ctx)
        return canonical_json(request.to_payload())
    if parts.event is None:
        parts.event = canonical_json(wire.event_payload(trigger))
    if ctx.use_api:
        events, memos_json = b"[]", b"{}"
    else:
        events = b"[" + parts.event + b"]"
        for step in settled:
            if step.step_id not in parts.memos:
                memo = wire.normalise_memo(memo_of(step), field=f"steps[{step.step_id!r}]")
                parts.memos[step.step_id] = canonical_json(memo)
        # Hex IDs: JCS's UTF-16 key order is plain string order.
        ids = sorted(s.step_id for s in settled)
        members = [b'"' + i.encode() + b'":' + parts.memos[i] for i in ids]
        memos_json = b"{" + b",".join(members) + b"}"
    return b"".join(
        (
            b'{"ctx":',
            canonical_json(ctx.to_payload()),
            b',"event":',
            parts.event,
            b',"events":',
            events,
            b',"steps":',
            memos_json,
            b',"use_api":',
            b"true" if ctx.use_api else b"false",
            b',"version":',
            str(wire.REQUEST_VERSION).encode(),
            b"}",
        )
    )
