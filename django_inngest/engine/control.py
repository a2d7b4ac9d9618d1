"""Control flow between the step API and the engine, and the values that cross it.

A step call becomes an *op* (what the handler asked for: run this, sleep until then, ...). The
engine executes it (``step_kinds``) or, while ``group.parallel`` plans, collects it. Pausing and
abandoning a run are ``BaseException`` subclasses, so that a handler's ``except Exception``
cannot swallow them.
"""

from __future__ import annotations

import datetime
import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django_inngest.exceptions import StepError, StepOutputError
from django_inngest.models import StepKind, StepRun

#: The error recorded when a worker died inside a step (or outside any).
WORKER_LOST = {"name": "WorkerLostError", "message": "the worker running this step stopped"}


class Suspend(BaseException):
    """The run is paused (its state is committed); the worker moves on."""


class Abandon(BaseException):
    """The run was cancelled or its lease lost; drop whatever is in flight."""


class PlanningInterrupt(BaseException):
    """A parallel branch, being planned, reached a step that has not run yet."""


@dataclass(frozen=True)
class RunOp:
    """``step.run``: call ``handler(*args)`` once and memoize its JSON result."""

    uid: str
    name: str
    handler: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kind = StepKind.RUN


@dataclass(frozen=True)
class SleepOp:
    """``step.sleep`` / ``step.sleep_until``: resume at ``until``."""

    uid: str
    name: str
    until: datetime.datetime
    kind = StepKind.SLEEP


@dataclass(frozen=True)
class WaitOp:
    """``step.wait_for_event``: resume with the first matching event, or None at the timeout."""

    uid: str
    name: str
    event: str
    if_exp: str | None
    timeout: datetime.timedelta
    kind = StepKind.WAIT


@dataclass(frozen=True)
class SendOp:
    """``step.send_event``: send events once; the memo is their IDs."""

    uid: str
    name: str
    payloads: tuple[dict[str, Any], ...]
    kind = StepKind.SEND


@dataclass(frozen=True)
class InvokeOp:
    """``step.invoke``: run another function and resume with its output."""

    uid: str
    name: str
    function_id: str
    data: dict[str, Any]
    timeout: datetime.timedelta | None
    #: The child's ``event.v`` (inngest-py's ``invoke(v=...)``).
    v: str | None = None
    kind = StepKind.INVOKE


StepOp = RunOp | SleepOp | WaitOp | SendOp | InvokeOp


@dataclass(frozen=True)
class Planned:
    """A new ``step.run`` met while ``group.parallel`` plans its branches, with its memo (a
    retry, or a step a dead worker left) if it has one."""

    op: RunOp
    memo: StepRun | None


@dataclass(frozen=True)
class Recalled:
    """A settled memo's value, replayed without executing anything (``step_kinds.recall``)."""

    value: Any


def check_output(value: Any, limit: int) -> Any:
    """Outputs are stored as JSON: reject what JSON cannot hold, and oversize values."""
    try:
        encoded = json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise StepOutputError(f"step output is not JSON-serialisable: {exc}") from None
    if len(encoded.encode()) > limit:
        raise StepOutputError(
            f"step output is {len(encoded.encode())} bytes, over the {limit} byte limit"
        )
    return json.loads(encoded)


def error_dict(exc: BaseException) -> dict[str, Any]:
    """Inngest's ``StandardError`` shape."""
    # A StepError re-raised from the handler keeps the failed step's own error name.
    name = (exc.name if isinstance(exc, StepError) else "") or type(exc).__name__
    message = getattr(exc, "message", None) or str(exc)
    return {
        "error": f"{name}: {message}" if message else name,
        "message": message,
        "name": name,
        "stack": "".join(traceback.format_exception(exc)),
    }
