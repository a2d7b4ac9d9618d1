"""When cron schedules fire: daylight saving, leap years, impossible dates, catch-up, jitter."""

from __future__ import annotations

import datetime
import itertools
from zoneinfo import ZoneInfo

import pytest

from django_inngest.cron import (
    MIN_JITTER,
    SCHEDULED_TIMER_EVENT,
    CronSchedule,
    jitter_offset,
    scheduled_timer_event,
)

UTC = datetime.UTC
PARIS = ZoneInfo("Europe/Paris")


def utc(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ticks(expression: str, start: datetime.datetime, end: datetime.datetime) -> list[str]:
    """Ticks in (start, end] as local wall times with their UTC offset, for readable asserts."""
    schedule = CronSchedule.parse(expression)
    return [
        tick.astimezone(schedule.timezone).isoformat()
        for tick in schedule.ticks_between(start, end)
    ]


# --- Daylight saving (Europe/Paris: 2024-03-31 02:00 -> 03:00, 2024-10-27 03:00 -> 02:00)


def test_spring_forward_skips_a_wall_time_that_does_not_exist() -> None:
    assert ticks("TZ=Europe/Paris 30 2 * * *", utc(2024, 3, 29), utc(2024, 4, 2)) == [
        "2024-03-29T02:30:00+01:00",
        "2024-03-30T02:30:00+01:00",
        # 2024-03-31 02:30 never happens in Paris
        "2024-04-01T02:30:00+02:00",
    ]


def test_spring_forward_day_has_23_hourly_ticks() -> None:
    day = ticks("TZ=Europe/Paris 0 * * * *", utc(2024, 3, 30, 22, 59), utc(2024, 3, 31, 21, 59))
    assert len(day) == 23
    assert day[:3] == [
        "2024-03-31T00:00:00+01:00",
        "2024-03-31T01:00:00+01:00",
        "2024-03-31T03:00:00+02:00",
    ]


def test_fall_back_fires_a_repeated_wall_time_twice() -> None:
    assert ticks("TZ=Europe/Paris 30 2 * * *", utc(2024, 10, 26), utc(2024, 10, 29)) == [
        "2024-10-26T02:30:00+02:00",
        "2024-10-27T02:30:00+02:00",  # 00:30 UTC
        "2024-10-27T02:30:00+01:00",  # 01:30 UTC
        "2024-10-28T02:30:00+01:00",
    ]


def test_fall_back_day_has_25_hourly_ticks_an_hour_apart() -> None:
    schedule = CronSchedule.parse("TZ=Europe/Paris 0 * * * *")
    day = list(schedule.ticks_between(utc(2024, 10, 26, 21, 59), utc(2024, 10, 27, 22, 59)))
    assert len(day) == 25
    assert all(b - a == datetime.timedelta(hours=1) for a, b in itertools.pairwise(day))


def test_a_time_outside_the_transition_fires_once_on_both_days() -> None:
    for start in (utc(2024, 3, 30, 12), utc(2024, 10, 26, 12)):
        day = ticks("TZ=Europe/Paris 15 4 * * *", start, start + datetime.timedelta(days=1))
        assert len(day) == 1
        assert day[0][11:19] == "04:15:00"


def test_new_york_fall_back_repeats_one_oclock() -> None:
    assert ticks("CRON_TZ=America/New_York 45 1 * * *", utc(2024, 11, 3), utc(2024, 11, 3, 12)) == [
        "2024-11-03T01:45:00-04:00",
        "2024-11-03T01:45:00-05:00",
    ]


def test_next_after_steps_through_a_fold_one_tick_at_a_time() -> None:
    schedule = CronSchedule.parse("TZ=Europe/Paris */30 2 * * *")
    moment = utc(2024, 10, 26, 23)
    seen = []
    for _ in range(4):
        tick = schedule.next_after(moment)
        assert tick is not None
        seen.append(tick)
        moment = tick
    assert [tick.isoformat() for tick in seen] == [
        "2024-10-27T00:00:00+00:00",
        "2024-10-27T00:30:00+00:00",
        "2024-10-27T01:00:00+00:00",
        "2024-10-27T01:30:00+00:00",
    ]


def test_ticks_are_utc_so_equality_survives_a_fold() -> None:
    tick = CronSchedule.parse("TZ=Europe/Paris 30 2 * * *").next_after(utc(2024, 10, 27, 1))
    assert tick == utc(2024, 10, 27, 1, 30)
    assert tick is not None and tick.tzinfo is UTC


def test_without_a_prefix_the_zone_is_utc() -> None:
    assert CronSchedule.parse("0 9 * * *").next_after(utc(2024, 3, 31)) == utc(2024, 3, 31, 9)


# --- Calendars


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (utc(2023, 3, 1), utc(2024, 2, 29)),
        (utc(2024, 2, 29), utc(2028, 2, 29)),
        (utc(2096, 3, 1), None),  # 2100 is no leap year; 2104 is past the 5-year horizon
    ],
)
def test_leap_day(start: datetime.datetime, expected: datetime.datetime | None) -> None:
    assert CronSchedule.parse("0 0 29 2 *").next_after(start) == expected


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 2,4,6,9,11 *", "0 0 , * *"])
def test_impossible_dates_never_fire(expression: str) -> None:
    schedule = CronSchedule.parse(expression)
    assert schedule.next_after(utc(2024, 1, 1)) is None
    assert schedule.last_at_or_before(utc(2024, 1, 1)) is None


def test_the_31st_skips_shorter_months() -> None:
    months = [t[:7] for t in ticks("0 0 31 * *", utc(2024, 1, 1), utc(2024, 12, 31, 23))]
    assert months == ["2024-01", "2024-03", "2024-05", "2024-07", "2024-08", "2024-10", "2024-12"]


def test_steps_restart_each_hour() -> None:
    minutes = [
        t[14:16] for t in ticks("*/7 * * * *", utc(2024, 1, 1, 9, 50), utc(2024, 1, 1, 10, 15))
    ]
    assert minutes == ["56", "00", "07", "14"]


def test_stepped_range_and_list() -> None:
    assert [t[11:16] for t in ticks("0,30 8-17/3 * * *", utc(2024, 1, 1), utc(2024, 1, 2))] == [
        "08:00",
        "08:30",
        "11:00",
        "11:30",
        "14:00",
        "14:30",
        "17:00",
        "17:30",
    ]


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # Vixie cron and robfig: 13th OR Friday.
    days = [t[:10] for t in ticks("0 0 13 * fri", utc(2024, 9, 1), utc(2024, 9, 30))]
    assert days == ["2024-09-06", "2024-09-13", "2024-09-20", "2024-09-27"]
    days = [t[:10] for t in ticks("0 0 13 * tue", utc(2024, 9, 1), utc(2024, 9, 30))]
    assert days == ["2024-09-03", "2024-09-10", "2024-09-13", "2024-09-17", "2024-09-24"]


def test_a_star_day_of_month_means_and() -> None:
    days = [t[:10] for t in ticks("0 0 * * fri", utc(2024, 9, 1), utc(2024, 9, 30))]
    assert days == ["2024-09-06", "2024-09-13", "2024-09-20", "2024-09-27"]
    # "*/1" keeps robfig's star bit; "*/2" drops it and day-of-week joins with OR.
    assert ticks("0 0 */1 * fri", utc(2024, 9, 1), utc(2024, 9, 30)) == ticks(
        "0 0 * * fri", utc(2024, 9, 1), utc(2024, 9, 30)
    )
    odd_or_friday = [t[8:10] for t in ticks("0 0 */2 * fri", utc(2024, 9, 1), utc(2024, 9, 14))]
    assert odd_or_friday == ["03", "05", "06", "07", "09", "11", "13"]


# --- Boundaries and catch-up


def test_next_after_is_strictly_after() -> None:
    schedule = CronSchedule.parse("*/5 * * * *")
    assert schedule.next_after(utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 1, 10, 10)
    just_before = utc(2024, 1, 1, 10, 4, 59) + datetime.timedelta(microseconds=999_999)
    assert schedule.next_after(just_before) == utc(2024, 1, 1, 10, 5)


def test_ticks_between_excludes_start_and_includes_end() -> None:
    schedule = CronSchedule.parse("0 * * * *")
    hours = list(schedule.ticks_between(utc(2024, 1, 1, 0), utc(2024, 1, 1, 3)))
    assert hours == [utc(2024, 1, 1, 1), utc(2024, 1, 1, 2), utc(2024, 1, 1, 3)]
    assert list(schedule.ticks_between(utc(2024, 1, 1, 3), utc(2024, 1, 1, 3))) == []


def test_last_at_or_before_finds_the_tick_to_catch_up() -> None:
    schedule = CronSchedule.parse("*/5 * * * *")
    assert schedule.last_at_or_before(utc(2024, 1, 1, 10, 7, 30)) == utc(2024, 1, 1, 10, 5)
    assert schedule.last_at_or_before(utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 1, 10, 5)
    weekly = CronSchedule.parse("TZ=Europe/Paris 0 9 * * mon")
    assert weekly.last_at_or_before(utc(2024, 4, 3)) == utc(2024, 4, 1, 7)


def test_last_at_or_before_sees_both_occurrences_of_a_repeated_time() -> None:
    schedule = CronSchedule.parse("TZ=Europe/Paris 30 2 * * *")
    assert schedule.last_at_or_before(utc(2024, 10, 27, 1, 0)) == utc(2024, 10, 27, 0, 30)
    assert schedule.last_at_or_before(utc(2024, 10, 27, 2, 0)) == utc(2024, 10, 27, 1, 30)


def test_naive_datetimes_are_refused() -> None:
    schedule = CronSchedule.parse("* * * * *")
    with pytest.raises(ValueError, match="aware datetime"):
        schedule.next_after(datetime.datetime(2024, 1, 1))


# --- Jitter and the timer event


def test_jitter_offset_is_stable_and_within_range() -> None:
    jitter = datetime.timedelta(seconds=30)
    offsets = {jitter_offset(f"fn:0 * * * *:{hour}", jitter) for hour in range(500)}
    assert all(MIN_JITTER <= offset < jitter for offset in offsets)
    assert len(offsets) > 400  # spread, not clumped
    assert max(offsets) - min(offsets) > datetime.timedelta(seconds=25)
    assert jitter_offset("same", jitter) == jitter_offset("same", jitter)


def test_jitter_offset_edges() -> None:
    assert jitter_offset("x", datetime.timedelta(0)) == datetime.timedelta(0)
    assert jitter_offset("x", MIN_JITTER) == MIN_JITTER  # Inngest returns the minimum


def test_scheduled_timer_event_shape() -> None:
    scheduled = utc(2024, 10, 27, 1, 30)
    fire = scheduled + datetime.timedelta(seconds=12, milliseconds=345)
    event = scheduled_timer_event("TZ=Europe/Paris 30 2 * * *", scheduled, fire)
    assert event == {
        "name": SCHEDULED_TIMER_EVENT,
        "id": "2024-10-27T01:30:00Z",
        "data": {
            "cron": "TZ=Europe/Paris 30 2 * * *",
            "scheduledAt": "2024-10-27T01:30:00Z",
            "fireAt": "2024-10-27T01:30:12Z",
        },
        "ts": int(fire.timestamp() * 1000),
    }
    assert SCHEDULED_TIMER_EVENT == "inngest/scheduled.timer"
    local = scheduled.astimezone(PARIS)
    assert scheduled_timer_event("x", local)["id"] == "2024-10-27T01:30:00Z"
    assert scheduled_timer_event("x", scheduled)["data"]["fireAt"] == "2024-10-27T01:30:00Z"
