"""How a step ended, as operators read it: derived from the step row *and* its run.

The engine leaves a step that a cancel interrupted as it was (Sleeping, Waiting, Running,
Retrying, with no end time), and records a ``wait_for_event`` that timed out as Completed with
no output, exactly like one that matched. Those rows are right for the engine (a cancelled run
never resumes; a replay needs ``None``), but shown raw they mislead: a step "Sleeping" until a
time long past, or "Completed" when nothing arrived. This module is the one place that turns
them into what happened, for the admin and for ``GET /v1/runs/{id}/steps`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

#: Step statuses that mean "not finished yet"; a run that ended leaves such a step interrupted.
UNFINISHED = ("Running", "Retrying", "Sleeping", "Waiting")

CANCELLED = "Cancelled"
TIMED_OUT = "TimedOut"
INTERRUPTED = "Interrupted"

#: What each outcome is called on screen (engine statuses keep their own labels).
LABELS = {
    "Completed": "Completed",
    "Failed": "Failed",
    "Running": "Running",
    "Retrying": "Waiting to retry",
    "Sleeping": "Sleeping",
    "Waiting": "Waiting",
    CANCELLED: "Cancelled",
    TIMED_OUT: "Timed out",
    INTERRUPTED: "Interrupted",
}


class RunLike(Protocol):
    status: str
    ended_at: datetime | None


class StepLike(Protocol):
    kind: str
    status: str
    output: Any
    ended_at: datetime | None


@dataclass(frozen=True)
class StepOutcome:
    #: An engine status, or Cancelled, TimedOut or Interrupted (a run that failed around it).
    status: str
    #: The step's end time, or the run's when the run's end cut the step short.
    ended_at: datetime | None
    #: The sender-visible ID (``id`` of the payload) of the event a wait matched.
    matched_event_id: str | None = None
    matched_event_name: str | None = None

    @property
    def label(self) -> str:
        return LABELS.get(self.status, self.status)

    @property
    def css(self) -> str:
        """The badge and bar colour class."""
        return {TIMED_OUT: "timedout", INTERRUPTED: "cancelled"}.get(
            self.status, self.status.lower()
        )

    @property
    def is_interrupted(self) -> bool:
        return self.status in (CANCELLED, INTERRUPTED)


def step_outcome(run: RunLike, step: StepLike) -> StepOutcome:
    """What ``step`` amounts to, given the state of ``run``."""
    if step.status in UNFINISHED and run.ended_at is not None:
        # The run ended around it: a cancel (the common case) or a failure elsewhere, e.g. a
        # parallel branch, or the run's own retries running out while this step waited.
        status = CANCELLED if run.status == "Cancelled" else INTERRUPTED
        return StepOutcome(status, run.ended_at)
    if step.kind == "wait" and step.status == "Completed":
        if step.output is None:
            return StepOutcome(TIMED_OUT, step.ended_at)
        if isinstance(step.output, dict):
            event_id, name = step.output.get("id"), step.output.get("name")
            return StepOutcome(
                "Completed",
                step.ended_at,
                matched_event_id=str(event_id) if event_id else None,
                matched_event_name=str(name) if name else None,
            )
    return StepOutcome(step.status, step.ended_at)
