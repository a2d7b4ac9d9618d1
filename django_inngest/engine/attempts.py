"""``ctx.attempt`` with Inngest's meaning.

Inngest sends the attempt of the queue item a request executes (docs/porting-notes.md §2): the
failed attempts of the current unit of work, reset to 0 whenever the run makes progress (a step
completes or fails for good, a sleep wakes, a wait or invoke resolves). So:

- inside a ``step.run`` body, ``ctx.attempt`` is that step's own retry count (0 on its first
  attempt). It is a ``ContextVar``, set around each body, so the concurrent bodies of
  ``group.parallel`` (threads or tasks) each see their own;
- outside any step it is the failures since the run last made progress: the handler's own
  failures (``FunctionRun.attempt``, which a pause after progress resets to 0) or, on the turn
  that retries a step, that step's failures so far; 0 again once this turn makes progress.

The variable also tells whether a step body is running, so that a step called inside a step
body fails as in inngest-py ("Nested steps are not supported").
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

from django_inngest.exceptions import NonRetriableError
from django_inngest.models import StepStatus

if TYPE_CHECKING:
    from django_inngest.engine.invocation import Invocation

#: (run ID, attempt) while a step body of that run executes. The run ID keeps a run started
#: inline from inside a step body (django-q2's sync mode) from reading its parent's value.
_in_step: ContextVar[tuple[str, int] | None] = ContextVar(
    "django_inngest_step_attempt", default=None
)


class within_step:  # a context manager, named like contextlib's
    """Mark the code inside as the body of a step of ``run_id`` at ``attempt`` (0-based)."""

    def __init__(self, run_id: str, attempt: int) -> None:
        self._value = (run_id, attempt)
        self._token: Token[tuple[str, int] | None] | None = None

    def __enter__(self) -> None:
        self._token = _in_step.set(self._value)

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _in_step.reset(self._token)


def step_attempt(run_id: str) -> int | None:
    """The attempt of the step body running here, or None outside any body of this run."""
    current = _in_step.get()
    return current[1] if current is not None and current[0] == run_id else None


def refuse_nested(run_id: str) -> None:
    """A step called inside a step body of the same run fails it, as in inngest-py."""
    if step_attempt(run_id) is not None:
        raise NonRetriableError("Nested steps are not supported.")


class RunAttempts:
    """The outside-any-step value of ``ctx.attempt`` for one turn."""

    def __init__(self, inv: Invocation) -> None:
        self._inv = inv
        retried = [
            m.attempts
            for m in inv.memos.values()
            if m.status in (StepStatus.RETRYING, StepStatus.RUNNING)
        ]
        #: Failures since the last progress, as the turn starts.
        self._at_start = max([inv.run.attempt, *retried])

    def outside(self) -> int:
        return 0 if self._inv.progressed else self._at_start

    def current(self) -> int:
        """``ctx.attempt``: the step body's own count inside a body, else ``outside()``."""
        inside = step_attempt(self._inv.run.run_id)
        return self.outside() if inside is None else inside
