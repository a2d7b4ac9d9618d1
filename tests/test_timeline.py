"""The timeline's geometry, computed without a database or a template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from django_inngest.console.timeline import MIN_WIDTH_PCT, Segment, build_timeline, format_duration

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_run(**fields: Any) -> SimpleNamespace:
    defaults: dict[str, Any] = {
        "function_id": "app-fn",
        "status": "Completed",
        "created_at": T0,
        "started_at": at(1),
        "ended_at": at(11),
    }
    return SimpleNamespace(**{**defaults, **fields})


def make_step(pk: int, step_id: str, **fields: Any) -> SimpleNamespace:
    defaults: dict[str, Any] = {
        "pk": pk,
        "step_id": step_id,
        "kind": "run",
        "status": "Completed",
        "attempts": 1,
        "attempt_log": [],
        "started_at": at(1),
        "ended_at": at(2),
        "wake_at": None,
        "output": None,
    }
    return SimpleNamespace(**{**defaults, **fields})


def attempt(
    number: int, start: float, end: float | None, error: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"attempt": number, "started_at": at(start).isoformat()}
    if end is not None:
        entry["ended_at"] = at(end).isoformat()
    if error:
        entry["error"] = {"error": f"ValueError: {error}", "message": error, "name": "ValueError"}
    return entry


def only(segments: tuple[Segment, ...]) -> Segment:
    assert len(segments) == 1, segments
    return segments[0]


def test_run_row_comes_first_with_queue_time_and_run_time() -> None:
    timeline = build_timeline(make_run(), [make_step(1, "a")], now=at(100))
    run_row, step_row = timeline.rows
    assert run_row.is_run and run_row.name == "app-fn" and run_row.duration == "11s"
    queued, ran = run_row.segments
    assert (queued.kind, queued.left_pct, queued.width_pct) == (
        "queued",
        0.0,
        pytest.approx(9.091, abs=0.001),
    )
    assert (ran.kind, ran.status, queued.status) == ("run", "completed", "queued")
    assert ran.left_pct + ran.width_pct == pytest.approx(100.0)
    assert timeline.end == at(11)  # an ended run's axis stops at its end, not at "now"
    assert step_row.key == "1" and step_row.kind_label == "step.run"
    assert [t.label for t in timeline.ticks] == ["0s", "2.8s", "5.5s", "8.2s", "11s"]


def test_step_bar_is_placed_by_its_start_and_end() -> None:
    step = make_step(1, "a", started_at=at(1), ended_at=at(2), attempt_log=[attempt(1, 1, 2)])
    bar = only(build_timeline(make_run(ended_at=at(10)), [step], now=at(10)).rows[1].segments)
    assert (bar.left_pct, bar.width_pct) == (10.0, 10.0)
    assert (bar.kind, bar.status, bar.label) == ("attempt", "completed", "1.0s")
    assert bar.tooltip == "Attempt 1 succeeded (1.0s)"


def test_zero_length_run_fills_the_axis_without_dividing_by_zero() -> None:
    run = make_run(status="Cancelled", started_at=None, ended_at=T0)
    timeline = build_timeline(run, [], now=at(50))
    queued = only(timeline.rows[0].segments)
    assert (queued.left_pct, queued.width_pct, queued.status) == (0.0, 100.0, "cancelled")
    assert timeline.rows[0].duration == "0ms"
    assert {t.label for t in timeline.ticks} == {"0s", "0ms"}


def test_in_progress_run_ends_its_axis_at_now() -> None:
    run = make_run(status="Running", ended_at=None)
    running = make_step(
        1, "a", status="Running", started_at=at(5), ended_at=None, attempt_log=[attempt(1, 5, None)]
    )
    timeline = build_timeline(run, [running], now=at(10))
    assert timeline.end == at(10)
    ran = timeline.rows[0].segments[-1]
    assert (ran.kind, ran.status, ran.tooltip) == ("run", "running", "Running for 9.0s")
    bar = only(timeline.rows[1].segments)
    assert (bar.status, bar.left_pct, bar.width_pct) == ("running", 50.0, 50.0)
    assert timeline.rows[1].duration == "5.0s"


def test_queued_run_that_never_started_is_one_grey_bar() -> None:
    run = make_run(status="Queued", started_at=None, ended_at=None)
    bar = only(build_timeline(run, [], now=at(4)).rows[0].segments)
    assert (bar.kind, bar.status, bar.width_pct) == ("queued", "queued", 100.0)


def test_step_with_three_attempts_shows_failures_gaps_and_success() -> None:
    log = [attempt(1, 0, 1, "boom"), attempt(2, 2, 3, "again"), attempt(3, 5, 6)]
    step = make_step(1, "flaky", attempts=3, started_at=at(0), ended_at=at(6), attempt_log=log)
    row = build_timeline(
        make_run(created_at=T0, started_at=T0, ended_at=at(10)), [step], at(10)
    ).rows[1]
    kinds = [(s.kind, s.status) for s in row.segments]
    assert kinds == [
        ("attempt", "failed"),
        ("retry-gap", "retrying"),
        ("attempt", "failed"),
        ("retry-gap", "retrying"),
        ("attempt", "completed"),
    ]
    first, gap, _, second_gap, last = row.segments
    assert (first.left_pct, first.width_pct) == (0.0, 10.0)
    assert (gap.left_pct, gap.width_pct) == (10.0, 10.0)
    assert (second_gap.left_pct, second_gap.width_pct) == (30.0, 20.0)
    assert (last.left_pct, last.width_pct) == (50.0, 10.0)
    assert first.tooltip == "Attempt 1 failed: ValueError: boom (1.0s)"
    assert row.attempts == 3 and row.duration == "6.0s"


def test_step_waiting_to_retry_draws_the_backoff_to_its_wake_up() -> None:
    run = make_run(status="Running", started_at=T0, ended_at=None)
    step = make_step(
        1,
        "flaky",
        status="Retrying",
        started_at=at(0),
        ended_at=None,
        wake_at=at(8),
        attempt_log=[attempt(1, 0, 2, "boom")],
    )
    failed, backoff = build_timeline(run, [step], now=at(4)).rows[1].segments
    assert failed.status == "failed"
    assert (backoff.kind, backoff.left_pct, backoff.width_pct) == ("retry-gap", 50.0, 50.0)
    assert backoff.is_open and backoff.tooltip.startswith(
        "Waiting to retry until 2026-01-01T12:00:08Z"
    )


def test_pending_sleep_is_drawn_to_its_wake_up_and_marked_open() -> None:
    run = make_run(status="Running", ended_at=None)
    sleep = make_step(
        1,
        "nap",
        kind="sleep",
        status="Sleeping",
        attempts=0,
        started_at=at(2),
        ended_at=None,
        wake_at=at(3600),
    )
    timeline = build_timeline(run, [sleep], now=at(4))
    row = timeline.rows[1]
    bar = only(row.segments)
    assert (bar.kind, bar.status, bar.is_open) == ("sleep", "pending", True)
    assert (bar.left_pct, bar.width_pct) == (50.0, 50.0)  # clipped at now, the axis end
    assert bar.tooltip == "Sleeping until 2026-01-01T13:00:00Z"
    assert row.kind_label == "step.sleep" and row.duration == ""


def test_pending_sleep_waking_before_now_is_not_open() -> None:
    run = make_run(status="Running", ended_at=None)
    sleep = make_step(
        1, "nap", kind="sleep", status="Sleeping", started_at=at(2), ended_at=None, wake_at=at(3)
    )
    bar = only(build_timeline(run, [sleep], now=at(4)).rows[1].segments)
    assert (bar.left_pct, bar.width_pct, bar.is_open) == (50.0, 25.0, False)


def test_completed_sleep_and_wait() -> None:
    steps = [
        make_step(1, "nap", kind="sleep", started_at=at(2), ended_at=at(7), wake_at=at(7)),
        make_step(
            2,
            "approval",
            kind="wait",
            started_at=at(7),
            ended_at=at(9),
            wake_at=at(60),
            output={"id": "01KQ6V3Z1M6YJ8W9R4TZC2QH5N", "name": "app/approved", "data": {}},
        ),
    ]
    rows = build_timeline(make_run(ended_at=at(10)), steps, now=at(10)).rows
    nap, approval = only(rows[1].segments), only(rows[2].segments)
    assert (nap.kind, nap.status, nap.left_pct, nap.width_pct) == ("sleep", "completed", 20.0, 50.0)
    assert nap.tooltip == "Slept 5.0s" and nap.label == "5.0s"
    assert (approval.kind, approval.is_open, approval.tooltip) == (
        "wait",
        False,
        "Waited for event 2.0s",
    )
    assert rows[2].kind_label == "step.wait_for_event"


def test_sleep_of_a_cancelled_run_is_interrupted() -> None:
    run = make_run(status="Cancelled", ended_at=at(5))
    sleep = make_step(
        1, "nap", kind="sleep", status="Sleeping", started_at=at(2), ended_at=None, wake_at=at(100)
    )
    row = build_timeline(run, [sleep], now=at(50)).rows[1]
    bar = only(row.segments)
    # Drawn and timed up to the cancel, not to a wake-up that will never come.
    assert (bar.status, bar.is_open, bar.left_pct, bar.width_pct) == (
        "cancelled",
        False,
        40.0,
        60.0,
    )
    assert bar.tooltip == "Cancelled at 2026-01-01T12:00:05Z (was due 2026-01-01T12:01:40Z)"
    assert (row.status, row.duration) == ("cancelled", "3.0s")
    assert row.outcome is not None and row.outcome.label == "Cancelled"
    assert row.outcome.ended_at == at(5)


def test_running_and_retrying_steps_of_a_cancelled_run_end_with_it() -> None:
    run = make_run(status="Cancelled", ended_at=at(6))
    running = make_step(
        1, "work", status="Running", ended_at=None, attempt_log=[attempt(1, 1, None)]
    )
    retrying = make_step(
        2,
        "flaky",
        status="Retrying",
        started_at=at(2),
        ended_at=None,
        wake_at=at(90),
        attempt_log=[attempt(1, 2, 3, "boom")],
    )
    rows = build_timeline(run, [running, retrying], now=at(50)).rows
    assert [(r.status, r.duration) for r in rows[1:]] == [
        ("cancelled", "5.0s"),
        ("cancelled", "4.0s"),
    ]
    interrupted = only(rows[1].segments)
    assert interrupted.status == "cancelled" and not interrupted.is_open
    _failed, backoff = rows[2].segments
    assert backoff.status == "cancelled" and not backoff.is_open
    assert backoff.left_pct + backoff.width_pct == pytest.approx(100.0)


def test_a_wait_that_timed_out_is_not_completed() -> None:
    run = make_run(ended_at=at(10))
    wait = make_step(
        1, "approval", kind="wait", started_at=at(1), ended_at=at(9), wake_at=at(9), output=None
    )
    row = build_timeline(run, [wait], now=at(10)).rows[1]
    assert row.status == "timedout" and row.outcome is not None
    assert row.outcome.label == "Timed out"
    bar = only(row.segments)
    assert (bar.status, bar.tooltip) == ("timedout", "Timed out after 8.0s")


def test_instant_step_gets_a_minimum_width_and_stays_on_the_axis() -> None:
    step = make_step(
        1, "instant", started_at=at(10), ended_at=at(10), attempt_log=[attempt(1, 10, 10)]
    )
    bar = only(build_timeline(make_run(ended_at=at(10)), [step], now=at(10)).rows[1].segments)
    assert bar.width_pct == MIN_WIDTH_PCT
    assert bar.left_pct + bar.width_pct == pytest.approx(100.0)


def test_send_step_without_attempt_log() -> None:
    step = make_step(1, "notify", kind="send", attempts=0, started_at=at(4), ended_at=at(5))
    row = build_timeline(make_run(ended_at=at(10)), [step], now=at(10)).rows[1]
    bar = only(row.segments)
    assert (bar.kind, bar.status, bar.left_pct, bar.width_pct) == ("send", "completed", 40.0, 10.0)
    assert row.kind_label == "step.send_event"


def test_attempt_cut_short_by_cancellation() -> None:
    run = make_run(status="Cancelled", ended_at=at(10))
    step = make_step(
        1,
        "slow",
        status="Running",
        started_at=at(5),
        ended_at=None,
        attempt_log=[attempt(1, 5, None)],
    )
    bar = only(build_timeline(run, [step], now=at(20)).rows[1].segments)
    assert (bar.status, bar.width_pct) == ("cancelled", 50.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"),
        (0.85, "850ms"),
        (4.21, "4.2s"),
        (42, "42s"),
        (185, "3m 05s"),
        (7800, "2h 10m"),
        (3 * 86400 + 4 * 3600, "3d 4h"),
        (-1, "0ms"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_format_duration_of_nothing() -> None:
    assert format_duration(None) == ""
