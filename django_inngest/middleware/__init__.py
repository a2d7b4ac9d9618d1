"""Middleware base classes with inngest-py 0.5.19's hook names and signatures.

Subclass ``MiddlewareSync`` (hooks are plain methods; usable by sync and async functions) or
``Middleware`` (hooks are coroutines; async functions only), override the hooks you need, and pass
the *class* (or any ``factory(client, raw_request)``) in ``Inngest(middleware=[...])`` or
``create_function(middleware=[...])``. A fresh instance is made for every execution segment (what
inngest-py calls a request; see ``middleware.manager``), so instance attributes are per segment.

Hooks, in the order they are called within one segment (see ``MiddlewareManager`` for the order
across several middleware and the exact call points)::

    transform_input(ctx, function, steps)   may replace ctx fields or memoized step data
    before_execution()                      replay is over: new code runs from here
    before_send_events(events)              only around step.send_event / client.send
    after_send_events(result)
    after_execution()                       the new code of this segment has finished
    transform_output(result)                may replace the output or error about to be stored
    before_response()                       the segment's result is settled

``before_send_events``/``after_send_events`` also run, on client middleware only, around
``Inngest.send`` and ``Inngest.send_sync``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from django_inngest.client import Inngest
    from django_inngest.definitions import EventValue as Event
    from django_inngest.engine.context import BaseContext
    from django_inngest.function import Function
    from django_inngest.sdk_types import SendEventsResult


class Middleware:
    """Async middleware: every hook is a coroutine. Only async functions may use it."""

    def __init__(self, client: Inngest, raw_request: object) -> None:
        """``raw_request`` is always None here: runs are not driven by HTTP requests."""
        self.client = client
        self.raw_request = raw_request

    async def after_execution(self) -> None:
        """After this segment's new code ran (once per segment, after a step or the return)."""
        return None

    async def after_send_events(self, result: SendEventsResult) -> None:
        """After events were sent; ``result.error`` is set if sending failed."""
        return None

    async def before_execution(self) -> None:
        """Before new code runs: the memoized steps of this segment have all been replayed."""
        return None

    async def before_response(self) -> None:
        """After the segment's output (or error) is settled; the last hook of a segment."""
        return None

    async def before_send_events(self, events: list[Event]) -> None:
        """Before events are sent. Mutating ``event.data`` changes what is sent."""
        return None

    async def transform_input(self, ctx: BaseContext, function: Function, steps: StepMemos) -> None:
        """Before the handler (re)enters: may replace ``ctx`` fields or memoized data in ``steps``."""
        return None

    async def transform_output(self, result: TransformOutputResult) -> None:
        """After a step or the function produced a result: may replace ``output`` or ``error``."""
        return None


class MiddlewareSync:
    """Sync middleware: hooks are plain methods. Sync and async functions may both use it."""

    def __init__(self, client: Inngest, raw_request: object) -> None:
        """``raw_request`` is always None here: runs are not driven by HTTP requests."""
        self.client = client
        self.raw_request = raw_request

    def after_execution(self) -> None:
        """After this segment's new code ran (once per segment, after a step or the return)."""
        return None

    def after_send_events(self, result: SendEventsResult) -> None:
        """After events were sent; ``result.error`` is set if sending failed."""
        return None

    def before_execution(self) -> None:
        """Before new code runs: the memoized steps of this segment have all been replayed."""
        return None

    def before_response(self) -> None:
        """After the segment's output (or error) is settled; the last hook of a segment."""
        return None

    def before_send_events(self, events: list[Event]) -> None:
        """Before events are sent. Mutating ``event.data`` changes what is sent."""
        return None

    def transform_input(self, ctx: BaseContext, function: Function, steps: StepMemos) -> None:
        """Before the handler (re)enters: may replace ``ctx`` fields or memoized data in ``steps``."""
        return None

    def transform_output(self, result: TransformOutputResult) -> None:
        """After a step or the function produced a result: may replace ``output`` or ``error``."""
        return None


#: What ``middleware=[...]`` lists hold: a middleware class, or any callable that makes one.
UninitializedMiddleware: TypeAlias = Callable[["Inngest", object], Middleware | MiddlewareSync]

#: The hook names, as in inngest-py; the manager and the checks iterate over them.
HOOKS = (
    "after_execution",
    "after_send_events",
    "before_execution",
    "before_response",
    "before_send_events",
    "transform_input",
    "transform_output",
)


class Opcode(enum.Enum):
    """What a step reported, with inngest-py's values (``server_lib/consts.py`` ``Opcode``)."""

    AI_GATEWAY = "AIGateway"
    INVOKE = "InvokeFunction"
    PLANNED = "StepPlanned"
    SLEEP = "Sleep"
    STEP_RUN = "StepRun"
    STEP_ERROR = "StepError"
    WAIT_FOR_EVENT = "WaitForEvent"
    STEP_FAILED = "StepFailed"


class _NoOutput:
    def __repr__(self) -> str:
        return "NO_OUTPUT"


#: ``TransformOutputResult.output`` when there is none (an error, or a step that pauses).
NO_OUTPUT: Any = _NoOutput()


@dataclass
class TransformOutputStepInfo:
    """The step a ``TransformOutputResult`` belongs to. Changes to it are discarded."""

    #: The step ID as the user wrote it (inngest-py's ``display_name``), without ``:n``.
    id: str
    op: Opcode
    opts: dict[str, object] | None


@dataclass
class TransformOutputResult:
    """What ``transform_output`` receives. Changes to ``error`` and ``output`` are kept.

    ``step`` is None for the function's own result. ``output`` is ``NO_OUTPUT`` when there is
    none: test with ``has_output()``.
    """

    error: Exception | None
    output: object
    step: TransformOutputStepInfo | None

    def has_output(self) -> bool:
        return self.output is not NO_OUTPUT


@dataclass
class MemoizedError:
    """A step that failed for good, as memoized (inngest-py ``step_lib/base.py``)."""

    message: str
    name: str
    stack: str | None = None


@dataclass
class StepMemo:
    """One memoized step (inngest-py's ``Output``): ``data``, or ``error`` if it failed.

    ``transform_input`` may assign ``data``: the handler then replays the new value.
    """

    data: object = None
    error: MemoizedError | None = None


class StepMemos:
    """The memoized steps a segment replays, keyed by step ID (``id``, ``id:1``, ...)."""

    def __init__(self, memos: dict[str, StepMemo]) -> None:
        self._memos = dict(memos)

    @property
    def size(self) -> int:
        """How many memos have not been replayed yet."""
        return len(self._memos)

    def values(self) -> Iterator[StepMemo]:
        return iter(list(self._memos.values()))

    def get(self, step_id: str) -> StepMemo | None:
        return self._memos.get(step_id)

    def pop(self, step_id: str) -> StepMemo | None:
        """Consume a memo as the handler replays it (the engine calls this)."""
        return self._memos.pop(step_id, None)

    def __contains__(self, step_id: object) -> bool:
        return step_id in self._memos

    def __repr__(self) -> str:
        return f"<StepMemos {list(self._memos)}>"
