"""The step API handed to ``async def`` handlers, with the shapes of inngest-py's ``Step`` and
``Group``: every method is a coroutine (``await ctx.step.run(...)``).

A thin layer over the same executors as ``StepSync`` (``steps``): arguments are checked by the
same functions, memos are replayed by ``step_kinds.recall`` (it touches no database), and every
executor runs on the worker thread with the loop suspended (``bridge.outside_loop``), so each
step's result is committed before the handler continues, exactly as in a sync run. Only the
user's ``step.run`` body is awaited between ``begin_run`` and ``finish_run``.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django_inngest.definitions import EventValue
from django_inngest.engine import parallel_async, step_kinds
from django_inngest.engine.attempts import refuse_nested, within_step
from django_inngest.engine.bridge import call_body, in_place, outside_loop
from django_inngest.engine.control import (
    InvokeOp,
    Recalled,
    RunOp,
    SleepOp,
    StepOp,
    Suspend,
    WaitOp,
)
from django_inngest.engine.invocation import Invocation
from django_inngest.engine.leases import lease_keeper
from django_inngest.engine.segments import Segments, is_last_attempt
from django_inngest.engine.steps import (
    PAUSE_OPCODES,
    as_event,
    check_parallel_mode,
    deserialize,
    event_payloads,
    invoke_op,
    invoked_output_type,
    send_op,
    serializing,
    sleep_op,
    sleep_until_op,
    step_uid,
    wait_op,
)
from django_inngest.exceptions import ConfigurationError, StepError
from django_inngest.function import Function
from django_inngest.sdk_types import ParallelMode, SendEventsResult
from django_inngest.serializers import OUTPUT_TYPE_UNSET

T = TypeVar("T")


class Step:
    """``ctx.step`` of an async handler: run, sleep, sleep_until, wait_for_event, send_event,
    invoke, invoke_by_id, each awaited."""

    def __init__(self, invocation: Invocation, segments: Segments) -> None:
        self._inv = invocation
        self._seg = segments
        self._busy = False

    @contextmanager
    def _one_step(self) -> Iterator[None]:
        # Steps of one run replay in a fixed order: two awaited at once (asyncio.gather) would
        # interleave their commits and replay differently. group.parallel is the way.
        if self._busy:
            raise ConfigurationError(
                "await one step at a time (steps of a run cannot run concurrently through "
                "asyncio.gather or tasks); use ctx.group.parallel to run steps in parallel"
            )
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    async def run(
        self,
        step_id: str,
        handler: Callable[..., Awaitable[T]] | Callable[..., T],
        *handler_args: Any,
        output_type: object = OUTPUT_TYPE_UNSET,
    ) -> T:
        inv, seg = self._inv, self._seg
        refuse_nested(inv.run.run_id)
        with self._one_step():
            op = RunOp(
                step_uid(inv, step_id),
                step_id,
                serializing(inv, handler, output_type),
                handler_args,
            )
            found = await self._recall(op)
            if isinstance(found, Recalled):
                return deserialize(inv, found.value, output_type)
            await seg.executing()
            step = outside_loop(step_kinds.begin_run, inv, op, found)
            with (
                lease_keeper.watch(inv.run.run_id, inv.owner, on_long=step.save),
                within_step(inv.run.run_id, step.attempts - 1),
            ):
                ok, outcome = await call_body(op.handler, op.args, in_place)
            if seg.active:
                final = not ok and is_last_attempt(inv, step, outcome)
                ok, outcome = await seg.step_ran(op.name, ok, outcome, final=final)
            try:
                value = outside_loop(step_kinds.finish_run, inv, step, ok, outcome)
            except Suspend:
                await seg.responded()
                raise
            except StepError as error:
                await seg.responded()
                await seg.reopen(op.uid, None, error)
                raise
            value = await seg.committed(op.uid, value)
        return deserialize(inv, value, output_type)

    async def _recall(self, op: StepOp) -> Recalled | Any:
        try:
            found = step_kinds.recall(self._inv, op)
        except StepError:
            await self._seg.replayed(op.uid, None)
            raise
        if isinstance(found, Recalled):
            return Recalled(await self._seg.replayed(op.uid, found.value))
        return found

    async def _perform(self, op: SleepOp | WaitOp | InvokeOp) -> Any:
        with self._one_step():
            found = await self._recall(op)
            if isinstance(found, Recalled):
                return found.value
            if found is None:
                await self._seg.pausing(op.name, PAUSE_OPCODES[type(op)])
            try:
                value = outside_loop(step_kinds.execute, self._inv, op, found)
            except StepError:
                await self._seg.replayed(op.uid, None)
                raise
            if found is None:
                return await self._seg.reopen(op.uid, value)
            return await self._seg.replayed(op.uid, value)

    async def sleep(self, step_id: str, duration: int | datetime.timedelta) -> None:
        await self._perform(sleep_op(self._inv, step_id, duration))

    async def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        await self._perform(sleep_until_op(self._inv, step_id, until))

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: int | datetime.timedelta,
        if_exp: str | None = None,
        match: str | None = None,
    ) -> EventValue | None:
        op = wait_op(self._inv, step_id, event, timeout, if_exp, match)
        return as_event(await self._perform(op))

    async def send_event(self, step_id: str, events: EventValue | list[EventValue]) -> list[str]:
        inv, seg = self._inv, self._seg
        refuse_nested(inv.run.run_id)
        items = events if isinstance(events, list) else [events]
        with self._one_step():
            op = send_op(inv, step_id, items)
            found = await self._recall(op)
            if isinstance(found, Recalled):
                return list(found.value or [])
            await seg.executing()
            await seg.before_send_events(items)
            op = type(op)(op.uid, op.name, event_payloads(items))  # as the hooks left them
            result = SendEventsResult()
            try:
                result.ids = list(outside_loop(step_kinds.execute, inv, op, found) or [])
            except Exception as exc:
                result.error = str(exc)
                await seg.after_send_events(result)
                raise
            await seg.after_send_events(result)
            await seg.step_ran(op.name, True, result.ids, final=False)
            return list(await seg.committed(op.uid, result.ids) or [])

    async def invoke(
        self,
        step_id: str,
        *,
        function: Function,
        data: dict[str, Any] | None = None,
        timeout: int | datetime.timedelta | None = None,
        v: str | None = None,
    ) -> Any:
        output = await self.invoke_by_id(
            step_id,
            app_id=function.app_id,
            function_id=function.fn_id,
            data=data,
            timeout=timeout,
            v=v,
        )
        return deserialize(self._inv, output, invoked_output_type(function))

    async def invoke_by_id(
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
        return await self._perform(op)


class Group:
    """``ctx.group`` of an async handler: ``await ctx.group.parallel((lambda: ..., ...))``
    (``parallel_async``)."""

    def __init__(self, invocation: Invocation, segments: Segments) -> None:
        self._inv = invocation
        self._seg = segments

    async def parallel(
        self,
        callables: Sequence[Callable[[], Awaitable[T]]],
        parallel_mode: ParallelMode = ParallelMode.WAIT,
    ) -> tuple[T, ...]:
        mode = check_parallel_mode(parallel_mode)
        return await parallel_async.run_group(self._inv, self._seg, callables, mode)
