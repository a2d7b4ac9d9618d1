"""How a step ended, derived from the step row and its run."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from django_inngest.console.step_outcome import step_outcome
from django_inngest.console.timefmt import iso

END = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)


def run(status: str, ended: datetime | None = END) -> Any:
    return SimpleNamespace(status=status, ended_at=ended)


def step(kind: str, status: str, output: Any = None, ended: datetime | None = None) -> Any:
    return SimpleNamespace(kind=kind, status=status, output=output, ended_at=ended)


@pytest.mark.parametrize("status", ["Sleeping", "Waiting", "Running", "Retrying"])
def test_an_unfinished_step_of_a_cancelled_run_was_cancelled_when_the_run_was(status: str) -> None:
    outcome = step_outcome(run("Cancelled"), step("sleep", status))
    assert (outcome.status, outcome.label, outcome.ended_at) == ("Cancelled", "Cancelled", END)
    assert outcome.is_interrupted and outcome.css == "cancelled"


def test_an_unfinished_step_of_a_failed_run_was_interrupted() -> None:
    outcome = step_outcome(run("Failed"), step("wait", "Waiting"))
    assert (outcome.status, outcome.ended_at) == ("Interrupted", END)


def test_an_unfinished_step_of_an_active_run_is_still_going() -> None:
    outcome = step_outcome(run("Running", None), step("sleep", "Sleeping"))
    assert (outcome.status, outcome.label, outcome.ended_at) == ("Sleeping", "Sleeping", None)


def test_waits_timed_out_or_matched() -> None:
    timed_out = step_outcome(run("Completed"), step("wait", "Completed", None, END))
    assert (timed_out.status, timed_out.label, timed_out.css) == (
        "TimedOut",
        "Timed out",
        "timedout",
    )
    payload = {"id": "evt-1", "name": "app/approved", "data": {}}
    matched = step_outcome(run("Completed"), step("wait", "Completed", payload, END))
    assert (matched.status, matched.matched_event_id, matched.matched_event_name) == (
        "Completed",
        "evt-1",
        "app/approved",
    )
    # A step.run that returned None simply completed.
    assert step_outcome(run("Completed"), step("run", "Completed", None, END)).status == "Completed"


def test_one_time_format() -> None:
    assert iso(END) == "2026-01-01T12:00:05Z"


def test_the_format_carries_the_sites_zone() -> None:
    from django.utils import timezone

    with timezone.override("Europe/Paris"):
        assert iso(END) == "2026-01-01T13:00:05+01:00"
