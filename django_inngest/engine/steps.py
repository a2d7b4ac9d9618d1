"""The step API handed to handlers, with the shapes of inngest-py's ``StepSync``.

Each call checks its arguments, becomes an op (``control``) and goes through
``step_kinds.perform``: a memoized step returns its stored result without running; a new step
runs, and its result is committed before the handler continues. Pausing (sleep, wait, invoke,
retry) raises ``Suspend``, a ``BaseException`` that a handler's ``except Exception`` cannot
swallow; the worker is then free and the run resumes later by replay.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.utils import timezone

from django_inngest.definitions import EventValue, duration_from, match_expression
from django_inngest.engine import step_kinds
from django_inngest.engine.control import InvokeOp, RunOp, SendOp, SleepOp, WaitOp
from django_inngest.engine.invocation import Invocation
from django_inngest.exceptions import ConfigurationError
from django_inngest.function import Function

T = TypeVar("T")

MIN_SLEEP = datetime.timedelta(seconds=1)
MAX_SLEEP = datetime.timedelta(days=365)
MAX_WAIT = datetime.timedelta(days=366)


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


def wait_expression(if_exp: str | None, match: str | None) -> str | None:
    """The TypeScript SDK's ``match="data.id"`` shorthand is ``event.data.id == async.data.id``."""
    if if_exp is not None and match is not None:
        raise ConfigurationError("wait_for_event: if_exp and match cannot be combined")
    return match_expression(match, "wait_for_event match") if match is not None else if_exp


class Step:
    """``ctx.step``: run, sleep, sleep_until, wait_for_event, send_event, invoke, invoke_by_id."""

    def __init__(self, invocation: Invocation) -> None:
        self._inv = invocation

    def _uid(self, step_id: str) -> str:
        if not isinstance(step_id, str) or not step_id:
            raise ConfigurationError("step_id must be a non-empty string")
        return self._inv.unique_id(step_id)

    def run(
        self,
        step_id: str,
        handler: Callable[..., T],
        *handler_args: Any,
        output_type: object = None,  # inngest-py's; outputs are JSON here, so it changes nothing
    ) -> T:
        op = RunOp(self._uid(step_id), step_id, handler, handler_args)
        result: T = step_kinds.perform(self._inv, op)
        return result

    def sleep(self, step_id: str, duration: int | datetime.timedelta) -> None:
        delta = duration_from(duration, "step.sleep duration")
        if not MIN_SLEEP <= delta <= MAX_SLEEP:
            raise ConfigurationError(
                f"step.sleep duration must be between 1 s and 1 year, got {delta}"
            )
        step_kinds.perform(self._inv, SleepOp(self._uid(step_id), step_id, timezone.now() + delta))

    def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        if not isinstance(until, datetime.datetime) or timezone.is_naive(until):
            raise ConfigurationError("step.sleep_until needs a timezone-aware datetime")
        if until - timezone.now() > MAX_SLEEP:
            # A time in the past just wakes at once, as in Inngest; the far future is a mistake.
            raise ConfigurationError(f"step.sleep_until is more than 1 year away: {until}")
        step_kinds.perform(self._inv, SleepOp(self._uid(step_id), step_id, until))

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: int | datetime.timedelta,
        if_exp: str | None = None,
        match: str | None = None,
    ) -> EventValue | None:
        expression = wait_expression(if_exp, match)
        delta = duration_from(timeout, "wait_for_event timeout")
        if delta > MAX_WAIT:
            raise ConfigurationError("wait_for_event timeout must be at most 366 days")
        op = WaitOp(self._uid(step_id), step_id, event, expression, delta)
        return as_event(step_kinds.perform(self._inv, op))

    def send_event(self, step_id: str, events: EventValue | list[EventValue]) -> list[str]:
        items = events if isinstance(events, list) else [events]
        payloads = tuple(e.to_dict() if isinstance(e, EventValue) else e for e in items)
        return list(
            step_kinds.perform(self._inv, SendOp(self._uid(step_id), step_id, payloads)) or []
        )

    def invoke(
        self,
        step_id: str,
        *,
        function: Function,
        data: dict[str, Any] | None = None,
        timeout: int | datetime.timedelta | None = None,
    ) -> Any:
        return self.invoke_by_id(
            step_id,
            app_id=function.app_id,
            function_id=function.fn_id,
            data=data,
            timeout=timeout,
        )

    def invoke_by_id(
        self,
        step_id: str,
        *,
        function_id: str,
        app_id: str | None = None,
        data: dict[str, Any] | None = None,
        timeout: int | datetime.timedelta | None = None,
    ) -> Any:
        delta = duration_from(timeout, "invoke timeout") if timeout is not None else None
        full_id = f"{app_id or self._inv.function.app_id}-{function_id}"
        op = InvokeOp(self._uid(step_id), step_id, full_id, dict(data or {}), delta)
        return step_kinds.perform(self._inv, op)


class Group:
    """``ctx.group``: ``parallel`` runs step callables concurrently, returning results in order
    (see ``step_kinds.parallel``)."""

    def __init__(self, invocation: Invocation) -> None:
        self._inv = invocation

    def parallel(self, callables: Sequence[Callable[[], T]]) -> tuple[T, ...]:
        return step_kinds.parallel(self._inv, callables)
