"""The middleware of a running turn, called at the segment call points ``middleware.manager``
defines (its module docstring is the specification; each method below names its case).

A turn runs the handler inline across several steps where inngest-py answers one request per
step, so the turn is cut into segments, each with a fresh ``MiddlewareManager``. The step APIs
(``steps``, ``steps_async``), the parallel schedulers and ``handler_call`` call these methods.

One implementation serves both kinds of run: the methods are coroutines; an async run awaits
them, and a sync run drives them with ``run_sync`` (its middleware are ``MiddlewareSync``, whose
hooks never suspend). Without middleware every method returns at once.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.utils import timezone

from django_inngest.conf import settings
from django_inngest.engine import retries
from django_inngest.engine.control import check_output
from django_inngest.exceptions import ConfigurationError, NonRetriableError, StepError
from django_inngest.middleware import (
    MemoizedError,
    Opcode,
    StepMemo,
    StepMemos,
    UninitializedMiddleware,
)
from django_inngest.middleware.manager import MiddlewareManager, function_result, step_result
from django_inngest.models import StepRun, StepStatus
from django_inngest.sdk_types import SendEventsResult

if TYPE_CHECKING:
    from django_inngest.definitions import EventValue
    from django_inngest.engine.context import BaseContext
    from django_inngest.engine.invocation import Invocation
    from django_inngest.function import Function

T = TypeVar("T")

#: Memos the first segment of a turn replays (``invocation._REPLAYED``).
_REPLAYED = (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SLEEPING, StepStatus.WAITING)


class HookFailed(BaseException):
    """A middleware hook raised ``error``. The segment fails as if the handler had raised it
    outside any step; a ``BaseException`` so that the handler's ``except Exception`` cannot
    swallow it on its way (in inngest-py the hooks run outside the handler altogether)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends: a sync run's segment calls."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise ConfigurationError("a middleware hook of a sync run awaited; use MiddlewareSync")


def middleware_of(function: Function) -> list[UninitializedMiddleware]:
    """The client's middleware, then the function's (inngest-py's order)."""
    client = function.client
    return [*(client.middleware if client is not None else ()), *function.middleware]


def first_memos(inv: Invocation) -> dict[str, StepMemo]:
    """What the turn's first segment replays: every memo reached in an earlier turn."""
    return {uid: as_step_memo(m) for uid, m in inv.memos.items() if m.status in _REPLAYED}


def as_step_memo(memo: StepRun) -> StepMemo:
    if memo.status != StepStatus.FAILED:
        return StepMemo(data=memo.output)
    error = memo.error or {}
    return StepMemo(
        error=MemoizedError(
            message=str(error.get("message", "")),
            name=str(error.get("name", "Error")),
            stack=error.get("stack"),
        )
    )


def is_last_attempt(inv: Invocation, step: StepRun, exc: BaseException) -> bool:
    """Whether this failed attempt is the step's last (``STEP_FAILED``, not ``STEP_ERROR``)."""
    now = timezone.now()
    failure = retries.Failure.of(exc, now)
    return retries.next_attempt_at(failure, step.attempts, inv.function.retry_limit, now) is None


class Segments:
    """The segments of one turn (or of one parallel step: ``for_step``)."""

    def __init__(
        self,
        function: Function,
        factories: Sequence[UninitializedMiddleware],
        *,
        is_async: bool,
    ) -> None:
        self.function = function
        self.factories = list(factories)
        self.is_async = is_async
        self.active = bool(self.factories)
        #: Set by ``handler_call`` once the context exists (it holds the step API, which holds
        #: this object).
        self.ctx: BaseContext | None = None
        self._manager: MiddlewareManager | None = None
        self._steps = StepMemos({})

    def for_step(self) -> Segments:
        """A fresh segment for one planned step of a parallel group (case f.)."""
        step_segments = Segments(self.function, self.factories, is_async=self.is_async)
        step_segments.ctx = self.ctx
        return step_segments

    # -- hooks, guarded ----------------------------------------------------------------------
    @property
    def manager(self) -> MiddlewareManager:
        assert self._manager is not None, "no segment is open"
        return self._manager

    async def _hook(self, call: Coroutine[Any, Any, T]) -> T:
        try:
            return await call
        except Exception as exc:
            raise HookFailed(exc) from exc

    # -- opening (1., 2.) --------------------------------------------------------------------
    async def open(self, memos: dict[str, StepMemo]) -> None:
        """Open a segment that will replay ``memos``: ``transform_input``, and
        ``before_execution`` at once if there is nothing to replay."""
        if not self.active:
            return
        client = self.function.client
        assert client is not None and self.ctx is not None
        try:
            self._manager = MiddlewareManager.for_function(
                client, self.function, is_async=self.is_async
            )
        except ConfigurationError as exc:  # a factory made async middleware for a sync run
            raise HookFailed(NonRetriableError(str(exc))) from exc
        self._steps = StepMemos(memos)
        await self._hook(self.manager.atransform_input(self.ctx, self.function, self._steps))
        if self._steps.size == 0:
            await self.executing()

    async def replayed(self, uid: str, value: Any) -> Any:
        """The handler reached a memo: pop it; returns its data as ``transform_input`` left it.
        The last one popped starts execution."""
        if not self.active or uid not in self._steps:
            return value
        memo = self._steps.pop(uid)
        if self._steps.size == 0:
            await self.executing()
        return value if memo is None else memo.data

    async def executing(self) -> None:
        """``before_execution``, once per segment (also when a step without memo is reached
        while memos remain)."""
        if self.active:
            await self._hook(self.manager.abefore_execution())

    # -- closing (a. to f.) ------------------------------------------------------------------
    async def step_ran(self, name: str, ok: bool, outcome: Any, *, final: bool) -> tuple[bool, Any]:
        """a./b.: a new step's body returned (``ok``) or raised: ``after_execution`` and
        ``transform_output``. Returns what to record: an error a middleware set on a success is
        recorded as the step's final error; a failure stays a failure."""
        if not self.active:
            return ok, outcome
        await self._hook(self.manager.aafter_execution())
        if ok:
            result = step_result(name, Opcode.STEP_RUN, output=outcome)
        else:
            op = Opcode.STEP_FAILED if final else Opcode.STEP_ERROR
            result = step_result(name, op, error=outcome)
        kept = await self._hook(self.manager.atransform_output(result))
        if not ok:
            return False, kept.error or outcome
        if kept.error is not None:
            # Inngest stores an op's error as its memo: final, whatever the retries left.
            error = kept.error
            return False, StepError(type(error).__name__, str(error), step_id=name)
        try:
            return True, check_output(kept.output, _output_limit())
        except Exception as exc:
            raise HookFailed(exc) from exc

    async def responded(self) -> None:
        """``before_response``: the segment's result is settled."""
        if self.active:
            await self._hook(self.manager.abefore_response())

    async def committed(self, uid: str, value: Any) -> Any:
        """After a new step's result committed: close the segment, and open the next one,
        inline, replaying just that memo. Returns the value the handler receives."""
        await self.responded()
        return await self.reopen(uid, value)

    async def reopen(self, uid: str, value: Any, error: StepError | None = None) -> Any:
        """Open the next segment with one memo and replay it at once."""
        if not self.active:
            return value
        memo = StepMemo(data=value)
        if error is not None:
            memo = StepMemo(error=MemoizedError(error.message, error.name, error.stack))
        await self.open({uid: memo})
        return await self.replayed(uid, value)

    async def pausing(self, name: str, op: Opcode) -> None:
        """c.: a new sleep, wait_for_event or invoke ends the segment."""
        if not self.active:
            return
        await self.executing()
        await self._hook(self.manager.aafter_execution())
        await self._hook(self.manager.atransform_output(step_result(name, op, output=None)))
        await self.responded()

    async def planned(self, names: Sequence[str]) -> None:
        """f.: ``group.parallel`` planned new steps (or waits for steps in flight)."""
        if not self.active:
            return
        await self.executing()  # a branch reached a new step while memos remained
        await self._hook(self.manager.aafter_execution())
        if len(names) == 1:  # inngest-py transforms a single reported step, planned or not
            await self._hook(self.manager.atransform_output(step_result(names[0], Opcode.PLANNED)))
        await self.responded()

    async def returned(self, output: Any) -> tuple[Exception | None, Any]:
        """d.: the handler returned. Returns (error, output) to act on."""
        if not self.active:
            return None, output
        await self._hook(self.manager.aafter_execution())
        kept = await self._hook(self.manager.atransform_output(function_result(output=output)))
        await self.responded()
        return kept.error, kept.output

    async def raised(self, exc: Exception) -> tuple[Exception | None, Any]:
        """e.: the handler raised outside any step (no ``after_execution``, as inngest-py).
        A middleware may clear the error and set an output: the run then completes with it."""
        if not self.active:
            return exc, None
        kept = await self._hook(self.manager.atransform_output(function_result(error=exc)))
        await self.responded()
        if kept.error is None and kept.has_output():
            return None, kept.output
        return kept.error or exc, None

    # -- step.send_event ---------------------------------------------------------------------
    async def before_send_events(self, events: list[EventValue]) -> None:
        if self.active:
            await self._hook(self.manager.abefore_send_events(events))

    async def after_send_events(self, result: SendEventsResult) -> None:
        if self.active:
            await self._hook(self.manager.aafter_send_events(result))


def _output_limit() -> int:
    return settings.MAX_STEP_OUTPUT_BYTES
