"""The step API handed to sync handlers, with the shapes of inngest-py's ``StepSync`` and
``GroupSync``; and the argument checks both step APIs share (the async ``Step`` is
``steps_async``).

Each call checks its arguments, becomes an op (``control``) and goes through ``step_kinds``:
``recall`` replays a memoized step without running it; otherwise the step executes, and its
result is committed before the handler continues. Pausing (sleep, wait, invoke, retry) raises
``Suspend``, a ``BaseException`` that a handler's ``except Exception`` cannot swallow; the worker
is then free and the run resumes later by replay. The function's middleware are called at the
segment call points (``segments``).
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.utils import timezone

from django_inngest.definitions import EventValue, duration_from, match_expression
from django_inngest.engine import parallel, step_kinds
from django_inngest.engine.attempts import refuse_nested
from django_inngest.engine.control import (
    InvokeOp,
    Recalled,
    RunOp,
    SendOp,
    SleepOp,
    StepOp,
    Suspend,
    WaitOp,
)
from django_inngest.engine.invocation import Invocation
from django_inngest.engine.segments import Segments, is_last_attempt, run_sync
from django_inngest.exceptions import ConfigurationError, StepError
from django_inngest.function import Function
from django_inngest.middleware import Opcode
from django_inngest.sdk_types import ParallelMode, SendEventsResult
from django_inngest.serializers import OUTPUT_TYPE_UNSET, deserialize_output, serialize_output

T = TypeVar("T")

MAX_SLEEP = datetime.timedelta(days=365)
MAX_WAIT = datetime.timedelta(days=366)
#: What ``transform_output`` reports for a new step that pauses the run.
PAUSE_OPCODES: dict[type, Opcode] = {
    SleepOp: Opcode.SLEEP,
    WaitOp: Opcode.WAIT_FOR_EVENT,
    InvokeOp: Opcode.INVOKE,
}


# -- the checks and ops both step APIs share ------------------------------------------------------
def step_uid(inv: Invocation, step_id: str) -> str:
    if not isinstance(step_id, str) or not step_id:
        raise ConfigurationError("step_id must be a non-empty string")
    return inv.unique_id(step_id)


def sleep_op(inv: Invocation, step_id: str, duration: int | datetime.timedelta) -> SleepOp:
    """Any positive duration, to the millisecond (an int is milliseconds), up to a year."""
    delta = duration_from(duration, "step.sleep duration")  # zero or negative: an error
    if delta > MAX_SLEEP:
        raise ConfigurationError(f"step.sleep duration must be at most 1 year, got {delta}")
    return SleepOp(step_uid(inv, step_id), step_id, timezone.now() + delta)


def sleep_until_op(inv: Invocation, step_id: str, until: datetime.datetime) -> SleepOp:
    if not isinstance(until, datetime.datetime):
        raise ConfigurationError(f"step.sleep_until needs a datetime, got {type(until).__name__}")
    if timezone.is_naive(until):
        until = until.astimezone()  # inngest-py's rule: a naive datetime is local time
    if until - timezone.now() > MAX_SLEEP:
        # A time in the past just wakes at once, as in Inngest; the far future is a mistake.
        raise ConfigurationError(f"step.sleep_until is more than 1 year away: {until}")
    return SleepOp(step_uid(inv, step_id), step_id, until)


def wait_expression(if_exp: str | None, match: str | None) -> str | None:
    """The TypeScript SDK's ``match="data.id"`` shorthand is ``event.data.id == async.data.id``."""
    if if_exp is not None and match is not None:
        raise ConfigurationError("wait_for_event: if_exp and match cannot be combined")
    return match_expression(match, "wait_for_event match") if match is not None else if_exp


def wait_op(
    inv: Invocation,
    step_id: str,
    event: str,
    timeout: int | datetime.timedelta,
    if_exp: str | None,
    match: str | None,
) -> WaitOp:
    expression = wait_expression(if_exp, match)
    delta = duration_from(timeout, "wait_for_event timeout")
    if delta > MAX_WAIT:
        raise ConfigurationError("wait_for_event timeout must be at most 366 days")
    return WaitOp(step_uid(inv, step_id), step_id, event, expression, delta)


def event_payloads(items: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    return tuple(e.to_dict() if isinstance(e, EventValue) else e for e in items)


def send_op(inv: Invocation, step_id: str, items: Sequence[Any]) -> SendOp:
    return SendOp(step_uid(inv, step_id), step_id, event_payloads(items))


def invoke_op(
    inv: Invocation,
    step_id: str,
    *,
    function_id: str,
    app_id: str | None,
    data: Any,
    timeout: int | datetime.timedelta | None,
    v: str | None,
) -> InvokeOp:
    delta = duration_from(timeout, "invoke timeout") if timeout is not None else None
    if v is not None and not isinstance(v, str):
        raise ConfigurationError(f"invoke v must be a string, got {type(v).__name__}")
    full_id = f"{app_id or inv.function.app_id}-{function_id}"
    return InvokeOp(step_uid(inv, step_id), step_id, full_id, dict(data or {}), delta, v)


def as_event(payload: dict[str, Any] | None) -> EventValue | None:
    """A memoized event payload (a matched wait) as the value handlers receive."""
    if payload is None:
        return None
    return EventValue(
        name=payload["name"],
        data=payload.get("data", {}),
        id=payload.get("id", ""),
        ts=payload.get("ts", 0),
        user=payload.get("user", {}),
        v=payload.get("v"),
    )


def check_parallel_mode(mode: object) -> ParallelMode:
    if not isinstance(mode, ParallelMode):
        raise ConfigurationError(
            f"group.parallel parallel_mode must be a ParallelMode, got {mode!r}"
        )
    return mode


def serialize(inv: Invocation, value: Any, output_type: object) -> Any:
    """``Inngest(serializer=...)`` with ``output_type``: how a step's output is stored."""
    client = inv.function.client
    return serialize_output(client.serializer if client else None, value, output_type)


def serializing(
    inv: Invocation, handler: Callable[..., Any], output_type: object
) -> Callable[..., Any]:
    """The step body that serializes the user's output (the user's own body when there is no
    serializer or ``output_type``). Async bodies, and sync ones that return an awaitable,
    serialize once awaited."""
    client = inv.function.client
    if client is None or client.serializer is None or output_type in (None, OUTPUT_TYPE_UNSET):
        return handler
    if inspect.iscoroutinefunction(handler):

        async def serialized_async(*args: Any) -> Any:
            return serialize(inv, await handler(*args), output_type)

        return serialized_async

    def serialized(*args: Any) -> Any:
        output = handler(*args)
        if inspect.isawaitable(output):
            awaitable = output

            async def later() -> Any:
                return serialize(inv, await awaitable, output_type)

            return later()
        return serialize(inv, output, output_type)

    return serialized


def deserialize(inv: Invocation, value: Any, output_type: object) -> Any:
    client = inv.function.client
    return deserialize_output(client.serializer if client else None, value, output_type)


def invoked_output_type(function: Function) -> object:
    return function.output_type if function.output_type is not None else OUTPUT_TYPE_UNSET


# -- StepSync -------------------------------------------------------------------------------------
class StepSync:
    """``ctx.step`` of a sync handler: run, sleep, sleep_until, wait_for_event, send_event,
    invoke, invoke_by_id."""

    def __init__(self, invocation: Invocation, segments: Segments | None = None) -> None:
        self._inv = invocation
        self._seg = segments or Segments(invocation.function, (), is_async=False)

    def run(
        self,
        step_id: str,
        handler: Callable[..., T],
        *handler_args: Any,
        output_type: object = OUTPUT_TYPE_UNSET,
    ) -> T:
        inv, seg = self._inv, self._seg
        refuse_nested(inv.run.run_id)
        body = serializing(inv, handler, output_type)
        op = RunOp(step_uid(inv, step_id), step_id, body, handler_args)
        found = self._recall(op)
        if isinstance(found, Recalled):
            return deserialize(inv, found.value, output_type)
        if not seg.active:  # the usual case, without middleware: step_kinds' own composition
            return deserialize(inv, step_kinds.execute(inv, op, found), output_type)
        run_sync(seg.executing())
        step = step_kinds.begin_run(inv, op, found)
        ok, outcome = step_kinds.run_body(inv, step, op)
        final = not ok and is_last_attempt(inv, step, outcome)
        ok, outcome = run_sync(seg.step_ran(op.name, ok, outcome, final=final))
        try:
            value = step_kinds.finish_run(inv, step, ok, outcome)
        except Suspend:
            run_sync(seg.responded())
            raise
        except StepError as error:
            run_sync(seg.responded())
            run_sync(seg.reopen(op.uid, None, error))
            raise
        return deserialize(inv, run_sync(seg.committed(op.uid, value)), output_type)

    def _recall(self, op: StepOp) -> Recalled | Any:
        if not self._seg.active:
            return step_kinds.recall(self._inv, op)
        try:
            found = step_kinds.recall(self._inv, op)
        except StepError:
            run_sync(self._seg.replayed(op.uid, None))
            raise
        if isinstance(found, Recalled):
            return Recalled(run_sync(self._seg.replayed(op.uid, found.value)))
        return found

    def _perform(self, op: SleepOp | WaitOp | InvokeOp) -> Any:
        """A sleep, wait or invoke: a new one ends the segment, then pauses the run (or, due
        already, returns at once and the next segment opens)."""
        found = self._recall(op)
        if isinstance(found, Recalled):
            return found.value
        if not self._seg.active:
            return step_kinds.execute(self._inv, op, found)
        if found is None:
            run_sync(self._seg.pausing(op.name, PAUSE_OPCODES[type(op)]))
        try:
            value = step_kinds.execute(self._inv, op, found)
        except StepError:
            run_sync(self._seg.replayed(op.uid, None))
            raise
        if found is None:
            return run_sync(self._seg.reopen(op.uid, value))
        return run_sync(self._seg.replayed(op.uid, value))

    def sleep(self, step_id: str, duration: int | datetime.timedelta) -> None:
        self._perform(sleep_op(self._inv, step_id, duration))

    def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        self._perform(sleep_until_op(self._inv, step_id, until))

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: int | datetime.timedelta,
        if_exp: str | None = None,
        match: str | None = None,
    ) -> EventValue | None:
        return as_event(self._perform(wait_op(self._inv, step_id, event, timeout, if_exp, match)))

    def send_event(self, step_id: str, events: EventValue | list[EventValue]) -> list[str]:
        """A step whose memo is the event IDs (``step_kinds._send``); the client's and the
        function's middleware see ``before_send_events``/``after_send_events`` inside it."""
        inv, seg = self._inv, self._seg
        refuse_nested(inv.run.run_id)
        items = events if isinstance(events, list) else [events]
        op = send_op(inv, step_id, items)
        found = self._recall(op)
        if isinstance(found, Recalled):
            return list(found.value or [])
        run_sync(seg.executing())
        run_sync(seg.before_send_events(items))
        op = dataclasses.replace(op, payloads=event_payloads(items))  # as the hooks left them
        result = SendEventsResult()
        try:
            result.ids = list(step_kinds.execute(inv, op, found) or [])
        except Exception as exc:
            result.error = str(exc)
            run_sync(seg.after_send_events(result))
            raise
        run_sync(seg.after_send_events(result))
        run_sync(seg.step_ran(op.name, True, result.ids, final=False))
        return list(run_sync(seg.committed(op.uid, result.ids)) or [])

    def invoke(
        self,
        step_id: str,
        *,
        function: Function,
        data: dict[str, Any] | None = None,
        timeout: int | datetime.timedelta | None = None,
        v: str | None = None,
    ) -> Any:
        output = self.invoke_by_id(
            step_id,
            app_id=function.app_id,
            function_id=function.fn_id,
            data=data,
            timeout=timeout,
            v=v,
        )
        return deserialize(self._inv, output, invoked_output_type(function))

    def invoke_by_id(
        self,
        step_id: str,
        *,
        function_id: str,
        app_id: str | None = None,
        data: dict[str, Any] | None = None,
        timeout: int | datetime.timedelta | None = None,
        v: str | None = None,
    ) -> Any:
        op = invoke_op(
            self._inv, step_id, function_id=function_id, app_id=app_id, data=data,
            timeout=timeout, v=v,
        )  # fmt: skip
        return self._perform(op)


class GroupSync:
    """``ctx.group`` of a sync handler: ``parallel`` runs step callables concurrently and
    returns their results in order (``engine.parallel``)."""

    def __init__(self, invocation: Invocation, segments: Segments | None = None) -> None:
        self._inv = invocation
        self._seg = segments or Segments(invocation.function, (), is_async=False)

    def parallel(
        self,
        callables: Sequence[Callable[[], T]],
        parallel_mode: ParallelMode = ParallelMode.WAIT,
    ) -> tuple[T, ...]:
        mode = check_parallel_mode(parallel_mode)
        return parallel.run_group(self._inv, self._seg, callables, mode)
