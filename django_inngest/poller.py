"""The timer and recovery poller: a thread in each worker process that keeps time for the
engine and for ingest.

Each poll dispatches runs whose time has come (a sleep ended, a wait or invoke timed out, a
retry is due, a debounce or batch fired, a throttle opened), runs whose wake-up task was lost
and runs whose worker died (lease expired); fires due cron ticks; and cancels runs past their
timeouts. django-q2's ``Schedule`` ticks only every ~30 s, so timers cannot ride on it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from django_inngest import executor
from django_inngest.conf import settings
from django_inngest.engine.cancellation import cancel_overdue
from django_inngest.engine.maintenance import periodic_maintenance
from django_inngest.ingest import schedules
from django_inngest.models import FunctionRun
from django_inngest.registrations import sync_registrations

logger = logging.getLogger(__name__)
#: Housekeeping (outbox redelivery, expired listeners and dedupe keys) runs this often.
MAINTENANCE_EVERY_SECONDS = 5.0
#: Most runs one poll dispatches.
POLL_LIMIT = 200


def tick() -> int:
    """One poll: fire due cron ticks, cancel runs past their timeouts, and dispatch every run
    whose time has come; returns how many runs were dispatched."""
    now = timezone.now()
    schedules.fire_due(now)
    cancel_overdue(now)
    ids = FunctionRun.objects.take_due(
        now, timedelta(seconds=settings.REDISPATCH_AFTER_SECONDS), POLL_LIMIT
    )
    if ids:
        executor.dispatch(ids)
    return len(ids)


class Poller(threading.Thread):
    """Runs in every worker process (started when django-q2 spawns the worker)."""

    def __init__(self) -> None:
        super().__init__(name="django-inngest-poller", daemon=True)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            sync_registrations()
        except Exception:
            logger.exception("Could not sync function registrations at worker start")
        last_maintenance = 0.0
        while not self._stop_event.wait(settings.TIMER_POLL_SECONDS):
            try:
                close_old_connections()
                tick()
                if time.monotonic() - last_maintenance > MAINTENANCE_EVERY_SECONDS:
                    last_maintenance = time.monotonic()
                    periodic_maintenance()
            except Exception:
                logger.exception("django_inngest poller error; retrying")


_poller: Poller | None = None


def start_poller(**_: Any) -> None:
    """Start this process's poller once (django-q2's ``post_spawn`` calls it in each worker)."""
    global _poller
    if _poller is not None and _poller.is_alive():
        return
    _poller = Poller()
    _poller.start()
