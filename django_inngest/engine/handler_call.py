"""One turn's call of a function's handler: its context, sync or async, with its middleware.

``inspect.iscoroutinefunction(handler)`` decides, as in inngest-py: an ``async def`` handler
gets a ``Context`` whose step API is awaited (``steps_async``) and runs on an event loop of its
own in the worker thread (``bridge``); any other gets a ``ContextSync`` (``steps``). Both
run the same code below: a sync run drives it with ``segments.run_sync``, as it never suspends.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from django_inngest.conf import settings
from django_inngest.definitions import EventValue
from django_inngest.engine.attempts import RunAttempts, step_attempt
from django_inngest.engine.bridge import drive, outside_loop
from django_inngest.engine.context import BaseContext, Context, ContextSync, FunctionLogger
from django_inngest.engine.control import Abandon, Suspend, check_output
from django_inngest.engine.invocation import Invocation
from django_inngest.engine.segments import (
    HookFailed,
    Segments,
    first_memos,
    middleware_of,
    run_sync,
)
from django_inngest.engine.steps import GroupSync, StepSync
from django_inngest.engine.steps_async import Group, Step
from django_inngest.exceptions import NonRetriableError
from django_inngest.serializers import serialize_output


class Turn:
    """Calls the handler once for a worker's turn at a run."""

    def __init__(self, inv: Invocation) -> None:
        self.inv = inv
        self.attempts = RunAttempts(inv)
        self.factories = middleware_of(inv.function)

    @property
    def attempt(self) -> int:
        """``ctx.attempt`` outside any step: the failures since the run last made progress."""
        return self.attempts.outside()

    def call(self) -> Any:
        """The handler's output, serialized and checked. Raises what the handler raised (a
        middleware's error included), or ``Suspend``/``Abandon``."""
        function = self.inv.function
        if function.is_handler_async:
            return drive(self._call_async)
        seg = Segments(function, self.factories, is_async=False)
        step, group = StepSync(self.inv, seg), GroupSync(self.inv, seg)
        ctx = ContextSync(step=step, group=group, **self._context_fields(is_async=False))
        return run_sync(self._call(ctx, seg, is_async=False))

    async def _call_async(self) -> Any:
        seg = Segments(self.inv.function, self.factories, is_async=True)
        step, group = Step(self.inv, seg), Group(self.inv, seg)
        ctx = Context(step=step, group=group, **self._context_fields(is_async=True))
        return await self._call(ctx, seg, is_async=True)

    async def _call(self, ctx: BaseContext, seg: Segments, *, is_async: bool) -> Any:
        seg.ctx = ctx
        try:
            await seg.open(first_memos(self.inv) if seg.active else {})
            try:
                returned = self.inv.function.handler(ctx)  # type: ignore[arg-type]
                if is_async:
                    returned = await returned
                elif inspect.isawaitable(returned):
                    _discard(returned)
                    raise NonRetriableError(
                        "the handler returned an awaitable but is not a coroutine function: "
                        "define it with `async def` so that it runs as an async function"
                    )
                output = self._output(returned)
            except (HookFailed, Suspend, Abandon):
                raise
            except Exception as exc:
                error, output = await seg.raised(exc)
                if error is exc:
                    raise
                if error is not None:
                    raise error from exc  # a middleware put another error in its place
                return self._output(output)
            error, output = await seg.returned(output)
            if error is not None:
                raise error
            return check_output(output, settings.MAX_STEP_OUTPUT_BYTES)
        except HookFailed as failed:
            raise failed.error from None  # handled as an error outside any step

    def _output(self, value: Any) -> Any:
        """``create_function(output_type=...)`` with the client's serializer, then checked."""
        function = self.inv.function
        serializer = function.client.serializer if function.client is not None else None
        if function.output_type is not None:
            value = serialize_output(serializer, value, function.output_type)
        return check_output(value, settings.MAX_STEP_OUTPUT_BYTES)

    def _context_fields(self, *, is_async: bool) -> dict[str, Any]:
        inv = self.inv
        # A batch's events in order (``ctx.event`` is the first); otherwise just the trigger.
        events = [
            EventValue(
                **{k: v for k, v in p.items() if k in ("name", "data", "id", "ts", "user", "v")}
            )
            for p in inv.run.trigger_payloads()
        ]
        event = events[0]
        run_id = inv.run.run_id
        # Silent while memoized steps replay; never inside a step body (in RACE mode bodies run
        # while the handler's thread plans the branches again).
        fn_logger = FunctionLogger(
            _base_logger(inv),
            {"run_id": run_id, "function_id": inv.function.id},
            lambda: inv.replaying and step_attempt(run_id) is None,
        )
        is_cancelled = (lambda: outside_loop(inv.is_cancelled)) if is_async else inv.is_cancelled
        return {
            "event": event,
            "events": events,
            "logger": fn_logger,
            "run_id": run_id,
            "function_id": inv.function.id,
            "_is_cancelled": is_cancelled,
            "_attempts": self.attempts,
        }


def _base_logger(inv: Invocation) -> logging.Logger:
    """``Inngest(logger=...)`` if it is a standard logger (inngest-py starts ``ctx.logger``
    from it), else ``django_inngest.functions.<function id>``."""
    client = inv.function.client
    if client is not None and isinstance(client.logger, logging.Logger):
        return client.logger
    return logging.getLogger(f"django_inngest.functions.{inv.function.id}")


def _discard(awaitable: Any) -> None:
    if inspect.iscoroutine(awaitable):
        awaitable.close()
