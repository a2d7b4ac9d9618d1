"""``MiddlewareManager``: runs the hooks of a list of middleware in inngest-py 0.5.19's order.

Order across middleware (inngest-py ``middleware_lib/manager.py``): the list is the client's
middleware, then the function's, each in the order given. ``transform_input``,
``before_execution``, ``before_response`` and ``before_send_events`` run in list order;
``after_execution``, ``transform_output`` and ``after_send_events`` run in reverse ("after" hooks
unwind). A hook that raises stops the remaining middleware of that hook, and the exception
propagates to the engine, which treats it as the call point below says.

Sync and async: an async run awaits ``Middleware`` hooks and calls ``MiddlewareSync`` hooks
directly (the ``a*`` methods). A sync run uses the plain methods and refuses async middleware:
the manager raises ``ConfigurationError`` naming it when it is built (inngest-py fails every such
run with ``AsyncUnsupportedError: encountered async middleware in non-async context``;
``handler_kinds.check_function_kinds`` reports it earlier, when the function is defined).

Segments: the call points the engine must honour
================================================

inngest-py runs each hook once per HTTP request, and a request executes at most one new step
before it answers. The engine runs a handler inline across several steps, so it cuts the handler's
execution into *segments*, each the equivalent of one inngest-py request, and builds a fresh
manager (``MiddlewareManager.for_function``, which makes fresh middleware instances) per segment.

Opening a segment:

1. ``transform_input(ctx, function, steps)``. ``steps`` is a ``StepMemos`` of what this segment
   will replay: at the start of a worker's turn, every memo of the run (completed and failed
   steps, and resolved sleeps, waits and invokes); when a segment opens inline right after a
   step committed, just that step's memo. The handler replays the ``StepMemo.data`` values from
   ``steps`` (which middleware may have replaced), popping each as it is reached.
2. ``before_execution()`` when the last memo of ``steps`` has been popped, or right after
   ``transform_input`` if ``steps`` is empty, or when the handler reaches a step that has no memo
   while memos remain (inngest-py would stay silent there; we do not). At most once per segment:
   the manager ignores later calls.

Closing a segment, exactly once, by the first of:

a. A new ``step.run`` (or ``step.send_event``) body returned: ``after_execution()``, then
   ``transform_output(step_result(id, Opcode.STEP_RUN, output=<serialized output>))``; the
   returned ``output`` is what is committed as the memo; an ``error`` set by a middleware is
   committed instead, as the step's final error, without retries (Inngest stores an op's error
   as its memo); then ``before_response()``. If the handler continues inline, the
   next segment opens with ``steps`` = that memo, and ``step.run`` returns the memo's data.
b. A ``step.run`` body raised: ``after_execution()``, ``transform_output`` with ``error`` set and
   op ``STEP_ERROR`` (a retry follows) or ``STEP_FAILED`` (the last attempt); the returned error
   is the one recorded; clearing it does not turn the failure into a success. Then
   ``before_response()``.
c. The handler reached a new sleep, wait_for_event or invoke: ``after_execution()``,
   ``transform_output`` with op ``SLEEP``/``WAIT_FOR_EVENT``/``INVOKE`` and ``output=None``, then
   ``before_response()``, and the run pauses.
d. The handler returned: ``after_execution()``, ``transform_output(function_result(output=...))``
   with ``step=None``; the returned output is the run's output (an ``error`` set by a middleware
   is handled as if the handler had raised it, as in e.); then ``before_response()``.
e. The handler raised (outside any step): no ``after_execution`` (inngest-py skips it,
   ``execution_lib/v0.py``); ``transform_output(function_result(error=exc))``; if a middleware
   cleared the error and set an output, the run completes with that output; else the error is
   handled as before (retry or fail). Then ``before_response()``.
f. ``group.parallel`` planned more than one new step: ``after_execution()``, no
   ``transform_output`` (inngest-py skips it for several results), ``before_response()``. Each
   planned step then runs as its own segment (fresh manager, ``steps`` empty, so
   ``transform_input`` then ``before_execution``; the body; then close as a. or b.), and the
   handler resumes in a new segment whose ``steps`` are those steps' memos.

A hook that raises in ``transform_input``, ``before_execution``, ``after_execution``,
``transform_output`` or ``before_response`` fails the segment like an error raised by the handler
outside any step (e.: retried per the function's retries); the step result it would have
committed is dropped. A hook that raises in ``before_send_events``/``after_send_events`` fails the
``send_event`` step like an error in a ``step.run`` body (inngest-py runs them inside the step).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django_inngest.exceptions import ConfigurationError
from django_inngest.middleware import (
    HOOKS,
    NO_OUTPUT,
    Middleware,
    MiddlewareSync,
    Opcode,
    StepMemos,
    TransformOutputResult,
    TransformOutputStepInfo,
    UninitializedMiddleware,
)

if TYPE_CHECKING:
    from django_inngest.client import Inngest
    from django_inngest.definitions import EventValue as Event
    from django_inngest.engine.context import BaseContext
    from django_inngest.function import Function
    from django_inngest.sdk_types import SendEventsResult

#: Hooks that unwind: they run over the middleware list in reverse.
REVERSED_HOOKS = frozenset({"after_execution", "after_send_events", "transform_output"})


def middleware_name(obj: object) -> str:
    """A readable name for a middleware class, instance or factory, for error messages."""
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    module = getattr(target, "__module__", "?")
    return f"{module}.{getattr(target, '__qualname__', repr(target))}"


def is_async_middleware(obj: object) -> bool:
    """True for a ``Middleware`` (class or instance), or anything with a coroutine hook."""
    if isinstance(obj, Middleware) or (inspect.isclass(obj) and issubclass(obj, Middleware)):
        return True
    return any(inspect.iscoroutinefunction(getattr(obj, hook, None)) for hook in HOOKS)


def step_result(
    step_id: str,
    op: Opcode,
    *,
    output: object = NO_OUTPUT,
    error: Exception | None = None,
    opts: dict[str, object] | None = None,
) -> TransformOutputResult:
    """The ``transform_output`` argument for a step's result (``step_id`` as the user wrote it)."""
    return TransformOutputResult(
        error=error, output=output, step=TransformOutputStepInfo(id=step_id, op=op, opts=opts)
    )


def function_result(
    *, output: object = NO_OUTPUT, error: Exception | None = None
) -> TransformOutputResult:
    """The ``transform_output`` argument for the handler's own return value or error."""
    return TransformOutputResult(error=error, output=output, step=None)


class MiddlewareManager:
    """The middleware instances of one segment, and their hooks in inngest-py's order."""

    def __init__(
        self,
        middleware: Sequence[Middleware | MiddlewareSync],
        *,
        is_async: bool,
        function_id: str = "",
    ) -> None:
        for instance in middleware:
            if not isinstance(instance, Middleware | MiddlewareSync):
                raise ConfigurationError(
                    f"middleware must make Middleware or MiddlewareSync instances, "
                    f"{middleware_name(instance)} is a {type(instance).__name__}"
                )
            if not is_async and is_async_middleware(instance):
                where = f"function {function_id!r}" if function_id else "this sync call"
                raise ConfigurationError(
                    f"middleware {middleware_name(instance)} is async (Middleware or a "
                    f"coroutine hook) but {where} is sync; use MiddlewareSync or an async "
                    "function (inngest-py: encountered async middleware in non-async context)"
                )
        self._middleware = list(middleware)
        self.is_async = is_async
        self._executing = False

    @classmethod
    def build(
        cls,
        client: Inngest,
        factories: Sequence[UninitializedMiddleware],
        *,
        is_async: bool,
        raw_request: object = None,
        function_id: str = "",
    ) -> MiddlewareManager:
        """Instantiate each factory as inngest-py does: ``factory(client, raw_request)``."""
        return cls(
            [factory(client, raw_request) for factory in factories],
            is_async=is_async,
            function_id=function_id,
        )

    @classmethod
    def for_function(
        cls, client: Inngest, function: Function, *, is_async: bool
    ) -> MiddlewareManager:
        """A segment's manager: the client's middleware, then the function's."""
        factories = [
            *getattr(client, "middleware", ()),
            *getattr(function, "middleware", ()),
        ]
        return cls.build(client, factories, is_async=is_async, function_id=function.id)

    @classmethod
    def for_client(cls, client: Inngest, *, is_async: bool) -> MiddlewareManager:
        """For ``Inngest.send``/``send_sync`` outside any function: the client's middleware."""
        return cls.build(client, list(getattr(client, "middleware", ())), is_async=is_async)

    @property
    def middleware(self) -> list[Middleware | MiddlewareSync]:
        return list(self._middleware)

    @property
    def executing(self) -> bool:
        """Whether ``before_execution`` has run in this segment."""
        return self._executing

    # -- ordering ---------------------------------------------------------------------------
    def _ordered(self, hook: str) -> list[Middleware | MiddlewareSync]:
        if hook in REVERSED_HOOKS:
            return list(reversed(self._middleware))
        return list(self._middleware)

    def _run(self, hook: str, *args: Any) -> None:
        if self.is_async:
            raise ConfigurationError(f"{hook}: an async run must await a{hook}()")
        for instance in self._ordered(hook):
            outcome = getattr(instance, hook)(*args)
            if inspect.isawaitable(outcome):  # built past the checks, e.g. a patched hook
                if inspect.iscoroutine(outcome):
                    outcome.close()
                raise ConfigurationError(
                    f"middleware {middleware_name(instance)}.{hook} is async but the run is sync"
                )

    async def _arun(self, hook: str, *args: Any) -> None:
        for instance in self._ordered(hook):
            outcome = getattr(instance, hook)(*args)
            if inspect.isawaitable(outcome):
                await outcome

    def _start_execution(self) -> bool:
        # Execution can start at the segment's start or at a step: run the hook only once.
        if self._executing:
            return False
        self._executing = True
        return True

    @staticmethod
    def _working_copy(result: TransformOutputResult) -> TransformOutputResult:
        # Middleware may mutate the step info; inngest-py discards those changes.
        return TransformOutputResult(
            error=result.error, output=result.output, step=copy.copy(result.step)
        )

    @staticmethod
    def _kept(
        result: TransformOutputResult, working: TransformOutputResult
    ) -> TransformOutputResult:
        return TransformOutputResult(error=working.error, output=working.output, step=result.step)

    # -- sync hooks -------------------------------------------------------------------------
    def transform_input(self, ctx: BaseContext, function: Function, steps: StepMemos) -> None:
        self._run("transform_input", ctx, function, steps)

    def before_execution(self) -> None:
        if self._start_execution():
            self._run("before_execution")

    def after_execution(self) -> None:
        self._run("after_execution")

    def transform_output(self, result: TransformOutputResult) -> TransformOutputResult:
        """Returns the result to act on: ``error`` and ``output`` as the middleware left them."""
        working = self._working_copy(result)
        self._run("transform_output", working)
        return self._kept(result, working)

    def before_response(self) -> None:
        self._run("before_response")

    def before_send_events(self, events: list[Event]) -> None:
        self._run("before_send_events", events)

    def after_send_events(self, result: SendEventsResult) -> None:
        self._run("after_send_events", result)

    # -- async hooks ------------------------------------------------------------------------
    async def atransform_input(
        self, ctx: BaseContext, function: Function, steps: StepMemos
    ) -> None:
        await self._arun("transform_input", ctx, function, steps)

    async def abefore_execution(self) -> None:
        if self._start_execution():
            await self._arun("before_execution")

    async def aafter_execution(self) -> None:
        await self._arun("after_execution")

    async def atransform_output(self, result: TransformOutputResult) -> TransformOutputResult:
        working = self._working_copy(result)
        await self._arun("transform_output", working)
        return self._kept(result, working)

    async def abefore_response(self) -> None:
        await self._arun("before_response")

    async def abefore_send_events(self, events: list[Event]) -> None:
        await self._arun("before_send_events", events)

    async def aafter_send_events(self, result: SendEventsResult) -> None:
        await self._arun("after_send_events", result)
