"""When a parsed cron expression fires: every instant whose wall-clock time matches.

A tick is an instant (unix seconds) at which the wall clock of the schedule's zone reads a
matching minute at second 0. So a wall time skipped by a spring-forward transition never
fires, and a wall time repeated by a fall-back transition fires once per occurrence. This is
what Inngest's scheduler (robfig/cron v3 ``SpecSchedule.Next``) does for transitions on the
hour and away from midnight, i.e. everywhere in Europe and North America; robfig drifts from
it in zones whose transitions fall at midnight or move the clock by 30 minutes (see
``docs/flow-control.md``), and we keep the wall-clock definition there.

The work is done one local date at a time: a date whose UTC offset is the same at both
midnights maps its matching wall times to instants by one subtraction; a transition day is
resolved wall time by wall time with ``fold``. Offsets swing by less than a day, so ticks of
dates two apart never interleave; that bounds the look-around. As in robfig, the search
gives up five years out.
"""

from __future__ import annotations

import datetime
import heapq
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from django_inngest.cron.parser import STAR_BIT, ParsedCron

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ONE_DAY = datetime.timedelta(days=1)
_SECOND = datetime.timedelta(seconds=1)
#: robfig's ``Next`` gives up when the year passes the start year + 5.
HORIZON_YEARS = 5


@dataclass(frozen=True)
class TickFinder:
    """Enumerates the ticks of one parsed expression, forwards or backwards."""

    cron: ParsedCron

    @cached_property
    def _hours(self) -> tuple[int, ...]:
        return tuple(hour for hour in range(24) if 1 << hour & self.cron.hour)

    @cached_property
    def _minutes(self) -> tuple[int, ...]:
        return tuple(minute for minute in range(60) if 1 << minute & self.cron.minute)

    def after(self, unix: int) -> Iterator[int]:
        """Ticks strictly after ``unix``, ascending."""
        zone = self.cron.timezone
        last_year = _wall_date(unix, zone).year + HORIZON_YEARS
        first = _wall_date(unix, zone) - _ONE_DAY
        heap: list[tuple[int, datetime.date]] = []
        day = first
        while day.year <= last_year:
            for tick in self._ticks_on(day):
                if tick > unix:
                    heapq.heappush(heap, (tick, day))
            # Ticks of dates up to the day before `day` precede every later date's ticks.
            while heap and heap[0][1] < day:
                yield heapq.heappop(heap)[0]
            day = self._next_candidate_date(day)
        while heap:
            yield heapq.heappop(heap)[0]

    def at_or_before(self, unix: int) -> Iterator[int]:
        """Ticks at or before ``unix``, descending."""
        zone = self.cron.timezone
        first_year = _wall_date(unix, zone).year - HORIZON_YEARS
        first = _wall_date(unix, zone) + _ONE_DAY
        heap: list[tuple[int, datetime.date]] = []
        day = first
        while day.year >= first_year:
            for tick in self._ticks_on(day):
                if tick <= unix:
                    heapq.heappush(heap, (-tick, day))
            while heap and heap[0][1] > day:
                yield -heapq.heappop(heap)[0]
            day = self._previous_candidate_date(day)
        while heap:
            yield -heapq.heappop(heap)[0]

    def _next_candidate_date(self, day: datetime.date) -> datetime.date:
        day += _ONE_DAY
        if not 1 << day.month & self.cron.month:
            # Jump to the first of the next month: no tick on any date of this one.
            year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
            return datetime.date(year, month, 1)
        return day

    def _previous_candidate_date(self, day: datetime.date) -> datetime.date:
        day -= _ONE_DAY
        if not 1 << day.month & self.cron.month:
            return day.replace(day=1) - _ONE_DAY if day.day > 1 else day
        return day

    def _ticks_on(self, day: datetime.date) -> list[int]:
        """The instants of every matching wall time on local date ``day``, ascending."""
        if not self._date_matches(day) or not self._hours or not self._minutes:
            return []
        zone = self.cron.timezone
        midnight = _naive_unix(day)
        offset = _steady_offset(day, zone)
        if offset is not None:
            return [
                midnight + hour * 3_600 + minute * 60 - offset
                for hour in self._hours
                for minute in self._minutes
            ]
        ticks: set[int] = set()
        for hour in self._hours:
            for minute in self._minutes:
                wall = datetime.datetime(day.year, day.month, day.day, hour, minute)
                for fold in (0, 1):
                    instant = _unix(wall.replace(tzinfo=zone, fold=fold))
                    if _naive_wall(instant, zone) == wall:  # not in a spring-forward gap
                        ticks.add(instant)
        return sorted(ticks)

    def _date_matches(self, day: datetime.date) -> bool:
        cron = self.cron
        if not 1 << day.month & cron.month:
            return False
        dom_match = bool(1 << day.day & cron.day_of_month)
        dow_match = bool(1 << (day.isoweekday() % 7) & cron.day_of_week)
        # robfig's dayMatches: AND when either field was "*" or "?", else OR (Vixie cron).
        if cron.day_of_month & STAR_BIT or cron.day_of_week & STAR_BIT:
            return dom_match and dow_match
        return dom_match or dow_match


def _steady_offset(day: datetime.date, zone: zoneinfo.ZoneInfo) -> int | None:
    """The UTC offset (seconds) if it holds all of local ``day``; ``None`` on a transition day.

    Both midnights must exist with the same offset, checked at noon too: that rules out
    a transition inside the day, since zones never change offset twice within half a day.
    """
    offsets = set()
    for wall in (
        datetime.datetime(day.year, day.month, day.day),
        datetime.datetime(day.year, day.month, day.day, 12),
        datetime.datetime.combine(day + _ONE_DAY, datetime.time()),
    ):
        for fold in (0, 1):
            aware = wall.replace(tzinfo=zone, fold=fold)
            delta = aware.utcoffset()
            if delta is None:
                return None
            offsets.add(delta // _SECOND)
    return offsets.pop() if len(offsets) == 1 else None


def _naive_unix(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days * 86_400


def _unix(moment: datetime.datetime) -> int:
    return (moment - _EPOCH) // _SECOND


def _naive_wall(unix: int, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix, zone).replace(tzinfo=None)


def _wall_date(unix: int, zone: zoneinfo.ZoneInfo) -> datetime.date:
    return datetime.datetime.fromtimestamp(unix, zone).date()
