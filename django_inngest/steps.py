"""The step API handed to handlers, with the shapes of inngest-py's ``StepSync``.

Each call is memoized by its step ID. A memoized step returns its stored result without running;
a new step runs, and its result is committed before the handler continues. Pausing (sleep, wait,
invoke, retry) raises ``Suspend``, a ``BaseException`` so that a handler's ``except Exception``
cannot swallow it; the worker is then free and the run resumes later by replay.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.utils import timezone

from django_inngest.definitions import Event, duration_from
from django_inngest.exceptions import ConfigurationError, StepError, StepOutputError
from django_inngest.models import StepKind, StepRun, StepStatus

if TYPE_CHECKING:
    from django_inngest.engine import Invocation
    from django_inngest.function import Function

T = TypeVar("T")

MIN_SLEEP = datetime.timedelta(seconds=1)
MAX_SLEEP = datetime.timedelta(days=365)
MAX_WAIT = datetime.timedelta(days=366)


@dataclass(frozen=True)
class PlannedStep:
    """A new ``step.run`` met while ``group.parallel`` plans its branches."""

    uid: str
    name: str
    memo: StepRun | None
    handler: Callable[..., Any]
    args: tuple[Any, ...]


class _Planned(BaseException):
    """Control flow: a parallel branch reached a step that has not run yet."""


class Suspend(BaseException):
    """Control flow: the run is paused (its state is committed); the worker moves on."""


class Abandon(BaseException):
    """Control flow: the run was cancelled or its lease lost; drop whatever is in flight."""


def check_output(value: Any, limit: int) -> Any:
    """Step outputs are stored as JSON: reject what JSON cannot hold, and oversize values."""
    try:
        encoded = json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise StepOutputError(f"step output is not JSON-serialisable: {exc}") from None
    if len(encoded.encode()) > limit:
        raise StepOutputError(
            f"step output is {len(encoded.encode())} bytes, over the {limit} byte limit"
        )
    return json.loads(encoded)


def _as_event(payload: dict[str, Any] | None) -> Event | None:
    if payload is None:
        return None
    return Event(
        name=payload["name"],
        data=payload.get("data", {}),
        id=payload.get("id", ""),
        ts=payload.get("ts", 0),
        user=payload.get("user", {}),
        v=payload.get("v"),
    )


class Step:
    """``ctx.step``: run, sleep, sleep_until, wait_for_event, send_event, invoke, invoke_by_id."""

    def __init__(self, invocation: Invocation) -> None:
        self._inv = invocation
        self._seen: dict[str, int] = {}

    def _unique_id(self, step_id: str) -> str:
        if not isinstance(step_id, str) or not step_id:
            raise ConfigurationError("step_id must be a non-empty string")
        # Inngest: the first use of an ID is bare; repeats get ":1", ":2", ...
        count = self._seen.get(step_id, 0)
        self._seen[step_id] = count + 1
        return step_id if count == 0 else f"{step_id}:{count}"

    def _stop_if_planning(self) -> None:
        # While group.parallel plans, only step.run is gathered; any other new step ends the
        # branch's planning, and it runs (and pauses, if it must) in the final pass.
        if self._inv.planning is not None:
            raise _Planned()

    def _memo(self, unique_id: str, kind: StepKind) -> StepRun | None:
        memo = self._inv.memos.get(unique_id)
        if memo is not None and memo.kind != kind:
            raise StepError(
                "NonDeterministicError",
                f"step {unique_id!r} was a {memo.kind} step in an earlier attempt, now {kind}",
                step_id=unique_id,
            )
        return memo

    def run(
        self,
        step_id: str,
        handler: Callable[..., T],
        *handler_args: Any,
        output_type: object = None,  # inngest-py's; outputs are JSON here, so it changes nothing
    ) -> T:
        uid = self._unique_id(step_id)
        memo = self._memo(uid, StepKind.RUN)
        if memo is not None and memo.status == StepStatus.COMPLETED:
            self._inv.consume_memo()
            return memo.output  # type: ignore[return-value]
        if memo is not None and memo.status == StepStatus.FAILED:
            self._inv.consume_memo()
            raise StepError.from_dict(memo.error or {}, uid)
        if self._inv.planning is not None:
            self._inv.planning.append(PlannedStep(uid, step_id, memo, handler, handler_args))
            raise _Planned()
        return self._inv.execute_step(uid, step_id, memo, handler, handler_args)

    def sleep(self, step_id: str, duration: int | datetime.timedelta) -> None:
        delta = duration_from(duration, "step.sleep duration")
        if not MIN_SLEEP <= delta <= MAX_SLEEP:
            raise ConfigurationError(
                f"step.sleep duration must be between 1 s and 1 year, got {delta}"
            )
        self._sleep(step_id, lambda: timezone.now() + delta)

    def sleep_until(self, step_id: str, until: datetime.datetime) -> None:
        if not isinstance(until, datetime.datetime) or timezone.is_naive(until):
            raise ConfigurationError("step.sleep_until needs a timezone-aware datetime")
        if until - timezone.now() > MAX_SLEEP:
            # A time in the past just wakes at once, as in Inngest; the far future is a mistake.
            raise ConfigurationError(f"step.sleep_until is more than 1 year away: {until}")
        self._sleep(step_id, lambda: until)

    def _sleep(self, step_id: str, wake_at: Callable[[], datetime.datetime]) -> None:
        uid = self._unique_id(step_id)
        memo = self._memo(uid, StepKind.SLEEP)
        if memo is not None and memo.status == StepStatus.COMPLETED:
            self._inv.consume_memo()
            return None
        self._stop_if_planning()
        from django_inngest import waits

        waits.sleep(self._inv, uid, step_id, memo, wake_at())
        return None

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: int | datetime.timedelta,
        if_exp: str | None = None,
        match: str | None = None,
    ) -> Event | None:
        if if_exp is not None and match is not None:
            raise ConfigurationError("wait_for_event: if_exp and match cannot be combined")
        if match is not None:
            if_exp = f"event.{match} == async.{match}"
        delta = duration_from(timeout, "wait_for_event timeout")
        if delta > MAX_WAIT:
            raise ConfigurationError("wait_for_event timeout must be at most 366 days")
        uid = self._unique_id(step_id)
        memo = self._memo(uid, StepKind.WAIT)
        if memo is not None and memo.status == StepStatus.COMPLETED:
            self._inv.consume_memo()
            return _as_event(memo.output)
        self._stop_if_planning()
        from django_inngest import waits

        return _as_event(waits.wait_for_event(self._inv, uid, step_id, memo, event, if_exp, delta))

    def send_event(self, step_id: str, events: Event | list[Event]) -> list[str]:
        uid = self._unique_id(step_id)
        memo = self._memo(uid, StepKind.SEND)
        if memo is not None and memo.status == StepStatus.COMPLETED:
            self._inv.consume_memo()
            return list(memo.output or [])
        items = events if isinstance(events, list) else [events]
        payloads = [e.to_dict() if isinstance(e, Event) else e for e in items]
        self._stop_if_planning()
        return self._inv.send_events(uid, step_id, payloads)

    def invoke(
        self,
        step_id: str,
        *,
        function: Function,
        data: dict[str, Any] | None = None,
        timeout: int | datetime.timedelta | None = None,
    ) -> Any:
        uid = self._unique_id(step_id)
        memo = self._memo(uid, StepKind.INVOKE)
        if memo is not None and memo.status == StepStatus.COMPLETED:
            self._inv.consume_memo()
            return memo.output
        if memo is not None and memo.status == StepStatus.FAILED:
            self._inv.consume_memo()
            raise StepError.from_dict(memo.error or {}, uid)
        delta = duration_from(timeout, "invoke timeout") if timeout is not None else None
        self._stop_if_planning()
        from django_inngest import waits

        return waits.invoke(self._inv, uid, step_id, memo, function, data or {}, delta)

    def invoke_by_id(
        self,
        step_id: str,
        *,
        function_id: str,
        app_id: str | None = None,
        data: dict[str, Any] | None = None,
        timeout: int | datetime.timedelta | None = None,
    ) -> Any:
        from django_inngest.registry import registry

        full_id = f"{app_id or self._inv.function.app_id}-{function_id}"
        target = registry.get(full_id)
        if target is None:
            raise ConfigurationError(f"invoke_by_id: no function {full_id!r} is registered")
        return self.invoke(step_id, function=target, data=data, timeout=timeout)


class Group:
    """``ctx.group``: ``parallel`` runs step callables concurrently, returning results in order.

    Like Inngest, it plans first: each branch runs until it reaches a step that has not run yet,
    those steps execute concurrently in threads, and their results are committed; this repeats
    until every branch has run to its end from memo. A branch that sleeps or waits pauses the
    run; on resume the finished branches replay from memo.
    """

    def __init__(self, invocation: Invocation, step: Step) -> None:
        self._inv = invocation
        self._step = step

    def parallel(self, callables: Sequence[Callable[[], T]]) -> tuple[T, ...]:
        if self._inv.planning is not None:  # nested parallel: the outer one plans
            return tuple(fn() for fn in callables)
        counters = dict(self._step._seen)
        while True:
            # Every pass replays the branches from the same step-ID counters.
            self._step._seen = dict(counters)
            planned = self._plan(callables)
            if not planned:
                break
            self._inv.execute_parallel(planned)
        self._step._seen = dict(counters)
        return tuple(fn() for fn in callables)

    def _plan(self, callables: Sequence[Callable[[], T]]) -> list[PlannedStep]:
        self._inv.planning = []
        with self._inv.quiet():
            try:
                for fn in callables:
                    try:
                        fn()
                    except _Planned:
                        pass
                    except Exception:
                        continue
                return self._inv.planning
            finally:
                self._inv.planning = None
