"""``Context`` (async handlers) and ``ContextSync``: what a handler receives, with inngest-py's
field names."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from django_inngest.definitions import EventValue

if TYPE_CHECKING:
    from django_inngest.engine.attempts import RunAttempts
    from django_inngest.engine.steps import GroupSync, StepSync
    from django_inngest.engine.steps_async import Group, Step


class FunctionLogger(logging.LoggerAdapter[logging.Logger]):
    """A standard logger that tags records with run and function IDs and stays silent while
    memoized steps are replayed, so each line is logged once per run, not once per replay."""

    def __init__(
        self, logger: logging.Logger, extra: dict[str, Any], replaying: Callable[[], bool]
    ):
        super().__init__(logger, extra)
        self._replaying = replaying

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self._replaying():
            return
        super().log(level, msg, *args, **kwargs)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class _Attempt:
    """``ctx.attempt`` as a dataclass field whose value is read live (see ``engine.attempts``):
    a step body's own retry count inside it, else the failures since the run last made progress.
    A value assigned after construction (a middleware's ``transform_input``) sticks."""

    @overload
    def __get__(self, obj: None, objtype: Any = None) -> int: ...
    @overload
    def __get__(self, obj: object, objtype: Any = None) -> int: ...
    def __get__(self, obj: object | None, objtype: Any = None) -> int:
        if obj is None:
            return 0  # the dataclass default
        values = obj.__dict__
        if "_attempt_assigned" in values:
            return int(values["_attempt_assigned"])
        attempts: RunAttempts | None = values.get("_attempts")
        return attempts.current() if attempts is not None else int(values.get("_attempt", 0))

    def __set__(self, obj: object, value: int) -> None:
        # ``attempt`` is the first field: while __init__ assigns it, ``_attempts`` is not set yet.
        key = "_attempt_assigned" if "_attempts" in obj.__dict__ else "_attempt"
        obj.__dict__[key] = value


@dataclass(kw_only=True)
class BaseContext:
    """The fields of inngest-py's ``Context`` and ``ContextSync`` but ``step`` and ``group``."""

    #: inngest-py's "Attempt number (0-indexed). Retries are >= 1.", per step (engine.attempts).
    attempt: _Attempt = _Attempt()
    event: EventValue
    events: list[EventValue]
    logger: FunctionLogger
    run_id: str
    function_id: str = ""
    #: inngest-py 0.5.19's queue job and request IDs; always None here (no HTTP request).
    job_id: str | None = None
    request_id: str | None = None
    _is_cancelled: Callable[[], bool] = field(default=lambda: False, repr=False)
    _attempts: RunAttempts | None = field(default=None, repr=False)

    def is_cancelled(self) -> bool:
        """Beyond Inngest: True once the run was cancelled, so a long step can stop early.

        Inngest never interrupts a running step; this lets a step cooperate. The step's result
        is dropped either way once the run is cancelled. A plain method in async handlers too
        (no ``await``), so that ``if ctx.is_cancelled():`` cannot silently test a coroutine.
        """
        return self._is_cancelled()


@dataclass(kw_only=True)
class Context(BaseContext):
    """Passed to ``async def handler(ctx: Context)``: ``await ctx.step.run(...)``."""

    group: Group
    step: Step


@dataclass(kw_only=True)
class ContextSync(BaseContext):
    """Passed to ``def handler(ctx: ContextSync)``. A sync handler annotated ``ctx: Context``
    (this package's name for it before async handlers) gets this one too: only whether the
    handler is ``async def`` decides, as in inngest-py."""

    group: GroupSync
    step: StepSync
