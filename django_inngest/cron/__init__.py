"""Cron schedules with Inngest's semantics: parsing, next/previous ticks, jitter, timer events.

``CronSchedule.parse("TZ=Europe/Paris 0 9 * * 1-5")`` validates exactly as Inngest's sync
does (``cron.parser``). Ticks (``cron.ticks``) are the instants whose wall-clock time in the
schedule's zone matches, which across daylight saving means:

* a wall-clock time skipped by a spring-forward transition does not fire that day
  (``30 2 * * *`` in Europe/Paris skips the last Sunday of March);
* a wall-clock time repeated by a fall-back transition fires twice, once per instant
  (``30 2 * * *`` in Europe/Paris fires at 00:30 and 01:30 UTC on the last Sunday of
  October); hourly schedules stay hourly in absolute time;
* like Inngest's scheduler (robfig/cron), a schedule with no tick in the next five years
  (``0 0 30 2 *``) has none: ``next_after`` returns ``None``.

A tick is a whole-second instant at second 0. Without a ``TZ=`` prefix the zone is UTC.
Ticks come back as aware UTC datetimes: a local datetime inside a repeated hour compares
unequal to every datetime in another zone (PEP 495), which would break equality checks
and unique keys; convert with ``astimezone(schedule.timezone)`` for display.
"""

from __future__ import annotations

import datetime
import hashlib
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django_inngest.cron.parser import ParsedCron, parse_cron_expression
from django_inngest.cron.ticks import TickFinder
from django_inngest.durations import MINUTE, SECOND, parse_duration_ns
from django_inngest.exceptions import ConfigurationError

#: The name of the event a cron tick sends (``consts.FnCronName``).
SCHEDULED_TIMER_EVENT = "inngest/scheduled.timer"
#: ``pkg/inngest/trigger.go``: a non-zero jitter is between 1 second and 5 minutes.
MIN_JITTER = datetime.timedelta(seconds=1)
MAX_JITTER = datetime.timedelta(minutes=5)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed, validated cron expression (``expression`` is kept as written)."""

    parsed: ParsedCron

    @classmethod
    def parse(cls, expression: str, *, field: str = "TriggerCron.cron") -> CronSchedule:
        return cls(parse_cron_expression(expression, field=field))

    @property
    def expression(self) -> str:
        return self.parsed.expression

    @property
    def timezone(self) -> zoneinfo.ZoneInfo:
        return self.parsed.timezone

    @cached_property
    def _ticks(self) -> TickFinder:
        return TickFinder(self.parsed)

    def next_after(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The first tick strictly after ``moment``, or ``None`` if none within five years."""
        return next(map(_utc, self._ticks.after(_unix_floor(moment))), None)

    def last_at_or_before(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The latest tick at or before ``moment`` (for catch-up), or ``None`` within 5 years."""
        return next(map(_utc, self._ticks.at_or_before(_unix_floor(moment))), None)

    def ticks_between(
        self, start: datetime.datetime, end: datetime.datetime
    ) -> Iterator[datetime.datetime]:
        """Every tick ``t`` with ``start < t <= end``, ascending, lazily."""
        limit = _unix_floor(end)
        for tick in self._ticks.after(_unix_floor(start)):
            if tick > limit:
                return
            yield _utc(tick)


def parse_jitter(jitter: str | None, *, field: str = "TriggerCron.jitter") -> datetime.timedelta:
    """``TriggerCron.jitter`` as Inngest validates it: blank is none, else 1 s to 5 min."""
    if jitter is None:
        return datetime.timedelta(0)
    if not isinstance(jitter, str):
        raise ConfigurationError(
            f"{field} must be a duration string such as '30s', not {type(jitter).__name__}"
        )
    if not jitter.strip():
        return datetime.timedelta(0)
    nanoseconds = parse_duration_ns(jitter, field=field)
    if nanoseconds < 0:
        raise ConfigurationError(f"{field}: cron jitter must be zero or more, got {jitter!r}")
    if 0 < nanoseconds < SECOND:
        raise ConfigurationError(f"{field}: cron jitter must be at least 1s, got {jitter!r}")
    if nanoseconds > 5 * MINUTE:
        raise ConfigurationError(f"{field}: cron jitter must be at most 5m, got {jitter!r}")
    return datetime.timedelta(microseconds=nanoseconds // 1000)


def parse_cron_trigger(
    cron: str, jitter: str | None = None, *, field: str = "TriggerCron"
) -> tuple[CronSchedule, datetime.timedelta]:
    """Validate a ``TriggerCron(cron, jitter)`` as Inngest's sync does; schedule and jitter."""
    return CronSchedule.parse(cron, field=f"{field}.cron"), parse_jitter(
        jitter, field=f"{field}.jitter"
    )


def jitter_offset(seed: str, jitter: datetime.timedelta) -> datetime.timedelta:
    """How long after its tick a jittered cron fires: stable per ``seed``, in ``[1s, jitter)``.

    Inngest (``cron.DeterministicJitter``) hashes the tick's queue-job ID with xxhash; we hash
    the seed (say ``f"{function_id}:{expression}:{tick.isoformat()}"``) with SHA-256, so the
    spread matches while the exact offsets differ. No jitter gives no offset; a jitter of
    exactly 1 s gives 1 s, as in Inngest.
    """
    if jitter <= datetime.timedelta(0):
        return datetime.timedelta(0)
    spread = (jitter - MIN_JITTER) // datetime.timedelta(microseconds=1)
    if spread <= 0:
        return MIN_JITTER
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return MIN_JITTER + datetime.timedelta(microseconds=digest % spread)


def scheduled_timer_event(
    expression: str,
    scheduled_at: datetime.datetime,
    fire_at: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The ``inngest/scheduled.timer`` event for one tick, shaped as Inngest sends it.

    From ``handleCron`` (``pkg/execution/executor/service.go``): the event ``id`` (also the
    run's idempotency key) is the tick in RFC 3339 UTC at second precision; ``data`` carries
    the expression as written plus ``scheduledAt`` and ``fireAt``; ``ts`` is ``fireAt`` in
    milliseconds.
    """
    fire = scheduled_at if fire_at is None else fire_at
    return {
        "name": SCHEDULED_TIMER_EVENT,
        "id": _rfc3339(scheduled_at),
        "data": {
            "cron": expression,
            "scheduledAt": _rfc3339(scheduled_at),
            "fireAt": _rfc3339(fire),
        },
        "ts": (_require_aware(fire) - _EPOCH) // datetime.timedelta(milliseconds=1),
    }


def _rfc3339(moment: datetime.datetime) -> str:
    return _require_aware(moment).astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _require_aware(moment: datetime.datetime) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime) or moment.utcoffset() is None:
        raise ValueError(f"an aware datetime is required, got {moment!r}")
    return moment


def _utc(unix: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC)


def _unix_floor(moment: datetime.datetime) -> int:
    return (_require_aware(moment) - _EPOCH) // datetime.timedelta(seconds=1)
