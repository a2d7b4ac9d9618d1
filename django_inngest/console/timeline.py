"""The geometry of a run's timeline, as drawn on the admin run page.

A pure function of a run, its steps and "now": no database, no templates, so every edge case
(a zero-length run, a run still going, retries, a sleep that has not woken yet) is unit-tested
without rendering HTML. Positions are percentages of the run's time axis, which goes from the
run's ``created_at`` to its ``ended_at`` (or ``now`` while it is active).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from django_inngest.console.step_outcome import StepOutcome, step_outcome
from django_inngest.console.timefmt import iso

#: Narrower bars are widened to this, so an instant step stays visible and clickable.
MIN_WIDTH_PCT = 0.6
#: Tick marks on the axis, as fractions of it (gridlines are drawn at the same places by CSS).
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)

# Step kinds whose time is spent waiting, not executing; they are drawn hatched.
_WAITING_KINDS = {"sleep": "sleep", "wait": "wait", "invoke": "invoke"}
_KIND_LABELS = {
    "run": "step.run",
    "sleep": "step.sleep",
    "wait": "step.wait_for_event",
    "invoke": "step.invoke",
    "send": "step.send_event",
}


class RunLike(Protocol):
    function_id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class StepLike(Protocol):
    pk: Any
    step_id: str
    kind: str
    status: str
    output: Any
    attempts: int
    attempt_log: list[dict[str, Any]]
    started_at: datetime
    ended_at: datetime | None
    wake_at: datetime | None


@dataclass(frozen=True)
class Segment:
    """One bar on a row: the run, an attempt, a retry gap, a queue wait or a sleep/wait."""

    left_pct: float
    width_pct: float
    #: run, queued, attempt, retry-gap, sleep, wait, invoke or send.
    kind: str
    #: completed, failed, running, pending, queued or cancelled: drives the colour.
    status: str
    label: str
    tooltip: str
    #: The bar goes on past the axis end (a sleep or retry wait that has not woken yet).
    is_open: bool = False


@dataclass(frozen=True)
class Row:
    """One line of the timeline: the run itself (``is_run``) or one step."""

    key: str
    name: str
    kind: str
    kind_label: str
    #: The CSS status (``completed``, ``cancelled``, ``timedout``...).
    status: str
    attempts: int
    duration: str
    segments: tuple[Segment, ...]
    is_run: bool = False
    #: How the step ended, as read by operators (None on the run's own row).
    outcome: StepOutcome | None = None


@dataclass(frozen=True)
class Tick:
    left_pct: float
    label: str


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    rows: tuple[Row, ...]
    ticks: tuple[Tick, ...] = field(default=())

    @property
    def span(self) -> timedelta:
        return self.end - self.start


def format_duration(delta: timedelta | None) -> str:
    """Short and human: ``850ms``, ``4.2s``, ``3m 05s``, ``2h 10m``, ``3d 4h``."""
    if delta is None:
        return ""
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{round(seconds)}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


class _Axis:
    """Maps instants to percentages of [start, end], clamped to the axis."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.end = end
        self.span = (end - start).total_seconds()

    def place(self, begin: datetime, finish: datetime) -> tuple[float, float, bool]:
        """(left %, width %, runs past the end) for the interval, never narrower than MIN."""
        if self.span <= 0:
            # Everything happened at one instant: any bar fills the (instant-wide) axis.
            return 0.0, 100.0, finish > self.end
        left = self._pct(begin)
        right = self._pct(finish)
        width = max(right - left, MIN_WIDTH_PCT)
        left = min(left, 100.0 - width)
        return round(left, 3), round(width, 3), finish > self.end

    def _pct(self, moment: datetime) -> float:
        offset = (moment - self.start).total_seconds()
        return min(max(offset / self.span * 100.0, 0.0), 100.0)

    def ticks(self) -> tuple[Tick, ...]:
        span = timedelta(seconds=max(self.span, 0.0))
        return tuple(
            # The origin reads "0s" whatever the scale; the other labels pick their own unit.
            Tick(
                left_pct=fraction * 100.0,
                label=format_duration(span * fraction) if fraction else "0s",
            )
            for fraction in TICKS
        )


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _clock(moment: datetime) -> str:
    # Tooltips use the admin's one format: ISO 8601 with the zone.
    return iso(moment)


def run_duration(run: RunLike, now: datetime) -> timedelta:
    """A run's duration, from creation (queue time included) to its end or ``now``.

    The one definition: the run page's summary, its timeline and the runs list all show it.
    """
    return (run.ended_at or max(now, run.created_at)) - run.created_at


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("error") or error.get("message") or error.get("name") or "error")
    return str(error) if error else ""


def build_timeline(run: RunLike, steps: Iterable[StepLike], now: datetime) -> Timeline:
    """The rows of ``run``'s timeline: the run first, then its steps in the given order."""
    start = run.created_at
    end = run.ended_at or max(now, start)
    axis = _Axis(start, end)
    rows = [_run_row(run, axis, end)]
    rows.extend(_step_row(step, step_outcome(run, step), axis, end) for step in steps)
    return Timeline(start=start, end=end, rows=tuple(rows), ticks=axis.ticks())


def _run_row(run: RunLike, axis: _Axis, end: datetime) -> Row:
    segments: list[Segment] = []
    status = run.status.lower()
    queued_until = run.started_at or end
    if queued_until > run.created_at or run.started_at is None:
        label = format_duration(queued_until - run.created_at)
        # A run that ended without ever starting (cancelled while queued) takes its final colour.
        queued_status = status if run.started_at is None and run.ended_at is not None else "queued"
        segments.append(
            _segment(
                axis,
                run.created_at,
                queued_until,
                "queued",
                queued_status,
                label,
                f"Queued for {label}",
            )
        )
    if run.started_at is not None:
        label = format_duration(end - run.started_at)
        verb = "Running for" if run.ended_at is None else f"{run.status} after"
        segments.append(
            _segment(axis, run.started_at, end, "run", status, label, f"{verb} {label}")
        )
    return Row(
        key="run",
        name=run.function_id,
        kind="run",
        kind_label="run",
        status=status,
        attempts=0,
        duration=format_duration(end - run.created_at),
        segments=tuple(segments),
        is_run=True,
    )


def _step_row(step: StepLike, outcome: StepOutcome, axis: _Axis, end: datetime) -> Row:
    # A step the run's end interrupted is drawn, and timed, up to that end (not to a wake-up
    # that will never come), and takes the cancelled colour.
    run_active = not outcome.is_interrupted
    if step.kind in _WAITING_KINDS:
        segments = [_waiting_segment(step, outcome, axis, end)]
    else:
        segments = _attempt_segments(step, axis, outcome.ended_at or end, run_active=run_active)
    finish = outcome.ended_at or (end if step.kind not in _WAITING_KINDS else None)
    return Row(
        key=str(step.pk),
        name=getattr(step, "display_name", "") or step.step_id,  # an SDK step's ID is a hash
        kind=step.kind,
        kind_label=_KIND_LABELS.get(step.kind, step.kind),
        status=outcome.css,
        attempts=step.attempts,
        duration=format_duration(finish - step.started_at) if finish else "",
        segments=tuple(segments),
        outcome=outcome,
    )


def _waiting_segment(step: StepLike, outcome: StepOutcome, axis: _Axis, end: datetime) -> Segment:
    what = {"sleep": "Slept", "wait": "Waited for event", "invoke": "Waited for invoked run"}
    until = f" (was due {_clock(step.wake_at)})" if step.wake_at else ""
    if outcome.is_interrupted and outcome.ended_at is not None:
        finish = outcome.ended_at
        status = "cancelled"
        tooltip = f"{outcome.label} at {_clock(finish)}{until}"
        label = format_duration(finish - step.started_at)
    elif step.ended_at is not None:
        finish = step.ended_at
        status = {"Failed": "failed", "TimedOut": "timedout"}.get(outcome.status, "completed")
        took = format_duration(finish - step.started_at)
        tooltip = f"Timed out after {took}" if status == "timedout" else f"{what[step.kind]} {took}"
        label = took
    else:
        # Still pending: drawn to the wake-up (a sleep's end, a wait's timeout), which may lie
        # past "now"; the axis clips it and marks it open rather than squashing the other bars.
        finish = step.wake_at or end
        status = "pending"
        due = f" until {_clock(step.wake_at)}" if step.wake_at else ""
        pending = {"sleep": "Sleeping", "wait": "Waiting for event", "invoke": "Waiting for run"}
        tooltip = f"{pending[step.kind]}{due}"
        label = ""
    return _segment(
        axis, step.started_at, finish, _WAITING_KINDS[step.kind], status, label, tooltip
    )


def _attempt_segments(
    step: StepLike, axis: _Axis, end: datetime, *, run_active: bool
) -> list[Segment]:
    log: Sequence[dict[str, Any]] = step.attempt_log or []
    if not log:
        # send_event steps (and rows from before attempt logging) have one span and no log.
        finish = step.ended_at or end
        status = _step_status(step, run_active=run_active)
        label = format_duration(finish - step.started_at)
        return [
            _segment(
                axis, step.started_at, finish, step.kind, status, label, f"{step.status} in {label}"
            )
        ]
    segments: list[Segment] = []
    previous_end: datetime | None = None
    for index, entry in enumerate(log, start=1):
        begin = _parse(entry.get("started_at")) or step.started_at
        if previous_end is not None and begin > previous_end:
            gap = format_duration(begin - previous_end)
            segments.append(
                _segment(
                    axis,
                    previous_end,
                    begin,
                    "retry-gap",
                    "retrying",
                    "",
                    f"Waited {gap} before retrying",
                )
            )
        attempt_end = _parse(entry.get("ended_at"))
        number = entry.get("attempt", index)
        if entry.get("error"):
            status = "failed"
            what = f"failed: {_error_text(entry['error'])}"
        elif attempt_end is not None:
            status = "completed"
            what = "succeeded"
        else:
            status = "running" if run_active else "cancelled"
            what = "running" if run_active else "interrupted"
        shown_end = attempt_end or end
        took = format_duration(shown_end - begin)
        segments.append(
            _segment(
                axis, begin, shown_end, "attempt", status, took, f"Attempt {number} {what} ({took})"
            )
        )
        previous_end = attempt_end
    if step.status == "Retrying" and previous_end is not None:
        # Between a failed attempt and the next one: the backoff, drawn up to its wake-up.
        # An interrupted backoff stops where the run ended, not at a retry that never came.
        wake = (step.wake_at or end) if run_active else end
        until = f" until {_clock(step.wake_at)}" if step.wake_at else ""
        tooltip = f"Waiting to retry{until}" if run_active else f"Ended at {_clock(end)}"
        segments.append(
            _segment(
                axis,
                previous_end,
                max(wake, previous_end),
                "retry-gap",
                "retrying" if run_active else "cancelled",
                "",
                tooltip,
            )
        )
    return segments


def _step_status(step: StepLike, *, run_active: bool) -> str:
    if step.status in ("Completed", "Failed"):
        return step.status.lower()
    return "running" if run_active else "cancelled"


def _segment(
    axis: _Axis, begin: datetime, finish: datetime, kind: str, status: str, label: str, tooltip: str
) -> Segment:
    left, width, is_open = axis.place(begin, max(finish, begin))
    return Segment(left, width, kind, status, label, tooltip, is_open)
