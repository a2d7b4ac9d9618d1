"""Random cron expressions against an independent minute-by-minute evaluator.

The generator builds each field from parts whose values it knows, so the reference does not
share the parser; the reference walks UTC minutes and reads the wall clock with zoneinfo,
which is the definition of a tick. Zones include odd ones: half-hour offsets, 30-minute DST
(Lord Howe), DST at midnight (Santiago, Havana, Cairo, Azores), 02:45 transitions (Chatham).
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from django_inngest.cron import CronSchedule

UTC = datetime.UTC
MINUTE = datetime.timedelta(minutes=1)
WINDOW = datetime.timedelta(days=2)
ZONES = [
    "UTC",
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "Africa/Cairo",
    "Atlantic/Azores",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]
    star: bool  # robfig's star bit: a "*" or "?" part with no step above 1


def random_field(rng: random.Random, low: int, high: int, names: list[str] | None) -> Field:
    def number(value: int) -> str:
        if names is not None and rng.random() < 0.4:
            name = names[value - low]
            return rng.choice([name, name.upper(), name.title()])
        return str(value)

    parts: list[str] = []
    values: set[int] = set()
    star = False
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.choice(["star", "value", "range", "range-step", "star-step", "from-step"])
        if kind == "star":
            parts.append(rng.choice(["*", "?", "*/1"]))
            values |= set(range(low, high + 1))
            star = True
        elif kind == "value":
            value = rng.randint(low, high)
            parts.append(number(value))
            values.add(value)
        else:
            start = rng.randint(low, high)
            end = rng.randint(start, high)
            step = rng.randint(1, max(1, (high - low) // 3))
            if kind == "range":
                parts.append(f"{number(start)}-{number(end)}")
                values |= set(range(start, end + 1))
            elif kind == "range-step":
                parts.append(f"{number(start)}-{number(end)}/{step}")
                values |= set(range(start, end + 1, step))
            elif kind == "star-step":
                parts.append(f"*/{step}")
                values |= set(range(low, high + 1, step))
                star = star or step == 1
            else:
                parts.append(f"{number(start)}/{step}")
                values |= set(range(start, high + 1, step))
    return Field(",".join(parts), frozenset(values), star)


@dataclass(frozen=True)
class Case:
    expression: str
    zone: ZoneInfo
    minute: Field
    hour: Field
    dom: Field
    month: Field
    dow: Field


def random_case(rng: random.Random) -> Case:
    zone = ZoneInfo(rng.choice(ZONES))
    # Keep the calendar fields loose often enough that a two-day window sees ticks.
    dense = rng.random() < 0.6
    minute = random_field(rng, 0, 59, None)
    hour = random_field(rng, 0, 23, None)
    dom = Field("*", frozenset(range(1, 32)), True) if dense else random_field(rng, 1, 31, None)
    month = Field("*", frozenset(range(1, 13)), True) if dense else random_field(rng, 1, 12, MONTHS)
    dow = (
        random_field(rng, 0, 6, WEEKDAYS)
        if rng.random() < 0.5
        else Field("*", frozenset(range(7)), True)
    )
    prefix = (
        ""
        if zone.key == "UTC" and rng.random() < 0.5
        else f"{rng.choice(['TZ', 'CRON_TZ'])}={zone.key} "
    )
    expression = f"{prefix}{minute.text} {hour.text} {dom.text} {month.text} {dow.text}"
    return Case(expression, zone, minute, hour, dom, month, dow)


def reference_matches(case: Case, instant: datetime.datetime) -> bool:
    wall = instant.astimezone(case.zone)
    if wall.second or wall.minute not in case.minute.values or wall.hour not in case.hour.values:
        return False
    if wall.month not in case.month.values:
        return False
    dom = wall.day in case.dom.values
    dow = wall.isoweekday() % 7 in case.dow.values
    return (dom and dow) if (case.dom.star or case.dow.star) else (dom or dow)


def reference_next(case: Case, start: datetime.datetime) -> datetime.datetime | None:
    instant = start.replace(second=0, microsecond=0) + MINUTE
    while instant <= start + WINDOW:
        if reference_matches(case, instant):
            return instant
        instant += MINUTE
    return None


def reference_last(case: Case, end: datetime.datetime) -> datetime.datetime | None:
    instant = end.replace(second=0, microsecond=0)
    while instant >= end - WINDOW:
        if reference_matches(case, instant):
            return instant
        instant -= MINUTE
    return None


def transition_instants(zone: ZoneInfo) -> list[datetime.datetime]:
    found = []
    for year in (2016, 2019, 2024):
        instant = datetime.datetime(year, 1, 1, tzinfo=UTC)
        offset = instant.astimezone(zone).utcoffset()
        while instant.year == year:
            instant += datetime.timedelta(hours=1)
            if (now := instant.astimezone(zone).utcoffset()) != offset:
                found.append(instant)
                offset = now
    return found


TRANSITIONS = {key: transition_instants(ZoneInfo(key)) for key in ZONES}


def random_start(rng: random.Random, case: Case) -> datetime.datetime:
    near = TRANSITIONS[case.zone.key]
    if near and rng.random() < 0.7:
        anchor = rng.choice(near)
        return anchor + datetime.timedelta(
            minutes=rng.randint(-36 * 60, 12 * 60), seconds=rng.randint(0, 59)
        )
    return datetime.datetime(2024, 1, 1, tzinfo=UTC) + datetime.timedelta(
        minutes=rng.randint(0, 366 * 24 * 60), seconds=rng.choice([0, 0, 30])
    )


@pytest.mark.parametrize("seed", range(6))
def test_next_and_last_tick_match_the_minute_by_minute_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        case = random_case(rng)
        schedule = CronSchedule.parse(case.expression)
        start = random_start(rng, case)
        for _step in range(3):
            ours = schedule.next_after(start)
            expected = reference_next(case, start)
            if ours is not None and ours <= start + WINDOW:
                assert ours == expected, (case.expression, start)
            else:
                assert expected is None, (case.expression, start, ours)
                break
            start = ours
        previous = schedule.last_at_or_before(start)
        expected_previous = reference_last(case, start)
        if previous is not None and previous >= start - WINDOW:
            assert previous == expected_previous, (case.expression, start)
        else:
            assert expected_previous is None, (case.expression, start, previous)


def test_the_generator_covers_the_syntax() -> None:
    rng = random.Random(99)
    texts = " ".join(random_case(rng).expression for _ in range(300))
    for fragment in ("?", "*/", "-", ",", "/", "TZ=", "CRON_TZ=", "MON", "jan"):
        assert fragment.lower() in texts.lower(), fragment
