"""Cron triggers firing: each due tick of a ``CronSchedule`` stores one
``inngest/scheduled.timer`` event and starts one run of its function.

Exactly one run per function and tick, however many pollers run on however many machines: the
event's primary key is derived from the function and the tick, so a second insert of the same
tick fails (and ``skip_locked`` keeps pollers off each other's schedules). After downtime a
schedule fires once, for its latest missed tick, not once per missed tick.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from django.db import IntegrityError

from django_inngest import database
from django_inngest.cron import jitter_offset, scheduled_timer_event
from django_inngest.definitions import TriggerCron
from django_inngest.function import Function
from django_inngest.ids import seeded_ulid
from django_inngest.ingest import flow, run_rows
from django_inngest.ingest.events import store_events
from django_inngest.ingest.validation import validate_event
from django_inngest.models import CronSchedule, WaitKind
from django_inngest.registrations import ensure_registered
from django_inngest.registry import registry

logger = logging.getLogger(__name__)


def fire_due(now: datetime, limit: int = 50) -> int:
    """Start the runs of every schedule whose tick has come; returns how many started."""
    started = 0
    with database.atomic():
        due = list(CronSchedule.objects.due(now).select_for_update(skip_locked=True)[:limit])
        for schedule in due:
            started += _fire(schedule, now)
    return started


def _trigger(schedule: CronSchedule) -> tuple[Function, TriggerCron] | None:
    function = registry.get(schedule.function_id)
    if function is None:
        return None
    return next(((function, t) for t in function.crons if t.cron == schedule.cron), None)


def _fire(schedule: CronSchedule, now: datetime) -> int:
    found = _trigger(schedule)
    if found is None:
        # Removed from this worker's code: the schedule stops firing.
        schedule.delete()
        logger.info(
            "Cron schedule removed function=%s cron=%r", schedule.function_id, schedule.cron
        )
        return 0
    function, trigger = found
    cron = trigger.schedule
    # Downtime: fire the latest missed tick once, not every tick missed.
    tick = max(schedule.next_tick_at, cron.last_at_or_before(now) or schedule.next_tick_at)
    following = cron.next_after(tick)
    started = _start_tick(function, trigger, tick, now)
    schedule.last_tick_at = tick
    if following is None:  # an expression with no tick within five years (Inngest stops too)
        schedule.delete()
        return started
    schedule.next_tick_at = following
    schedule.save(update_fields=["last_tick_at", "next_tick_at"])
    return started


def tick_event_id(function: Function, tick: datetime) -> str:
    """The tick's event key: the same function and tick always give the same ID."""
    digest = hashlib.sha256(function.id.encode()).digest()[:10]
    return seeded_ulid(int(tick.timestamp() * 1000), int.from_bytes(digest, "big"))


def _start_tick(function: Function, trigger: TriggerCron, tick: datetime, now: datetime) -> int:
    fire_at = tick + jitter_offset(
        f"{function.id}:{trigger.cron}:{tick.isoformat()}", trigger.jitter_delta
    )
    payload = scheduled_timer_event(trigger.cron, tick, fire_at)
    fields = validate_event(payload, received_ms=int(now.timestamp() * 1000), allow_internal=True)
    try:
        with database.atomic():
            (event,) = store_events(
                [fields], now, ids=[tick_event_id(function, tick)], dedupe=False
            )
            ensure_registered(function)
            run = run_rows.new_run(
                function,
                event,
                now,
                cron=trigger.cron,
                ready_at=max(fire_at, now),
                wait_kind=WaitKind.SCHEDULED if fire_at > now else WaitKind.NONE,
                **flow.gated_fields(function, event.as_payload(), now),
            )
            run_rows.insert([run], [], now)
    except IntegrityError:
        return 0  # this function's tick is already stored: another poller fired it
    logger.info(
        "Cron tick function=%s cron=%r tick=%s", function.id, trigger.cron, tick.isoformat()
    )
    return 1
