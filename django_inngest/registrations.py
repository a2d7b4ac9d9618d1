"""Keep ``FunctionRegistration`` rows in step with the code registry. (Rows of SDK apps'
functions are written by their syncs, ``sdk_apps.sync``, and left alone here.)"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from django_inngest import database
from django_inngest.function import Function
from django_inngest.models import CronSchedule, FunctionRegistration
from django_inngest.registry import registry
from django_inngest.sdk_apps.function import SdkFunction

logger = logging.getLogger(__name__)
_known: set[str] = set()


def _fields(function: Function) -> dict[str, object]:
    return {
        "app_id": function.app_id,
        "fn_id": function.fn_id,
        "name": function.name,
        "config": function.config(),
        "is_active": True,
        "sdk_app": None,  # code wins an ID an SDK app had (sdk_apps.sync refuses the reverse)
    }


def sync_registrations() -> tuple[int, int]:
    """Upsert a row per registered function; deactivate rows whose function left the code
    (rows of SDK apps' functions are theirs). Returns (active, deactivated). Runs of
    deactivated functions are kept.
    """
    functions = registry.all()
    with database.atomic():
        for function in functions:
            FunctionRegistration.objects.update_or_create(
                function_id=function.id, defaults=_fields(function)
            )
        deactivated = (
            FunctionRegistration.objects.filter(is_active=True, sdk_app__isnull=True)
            .exclude(function_id__in=[f.id for f in functions])
            .update(is_active=False)
        )
        # The code's own schedules: an SDK app's are synced with the app (app_sync).
        sync_schedules(
            functions, timezone.now(), CronSchedule.objects.filter(function__sdk_app=None)
        )
    ids = [f.id for f in functions]
    database.on_commit(lambda: _known.update(ids))  # only rows that really exist
    logger.info("Synced functions active=%s deactivated=%s", len(functions), deactivated)
    return len(functions), deactivated


def ensure_registered(function: Function) -> None:
    """Make sure a run's foreign key has a row to point at (cheap after the first call)."""
    if function.id in _known or isinstance(function, SdkFunction):
        return  # an SDK app's function has its row from the sync that made it known
    FunctionRegistration.objects.update_or_create(
        function_id=function.id, defaults=_fields(function)
    )
    # Remembered only once the row is committed: a rolled-back send takes the row with it.
    database.on_commit(lambda: _known.add(function.id))


def forget_cache() -> None:
    """Tests flush the database between cases; the cache must not outlive the rows."""
    _known.clear()


def sync_schedules(
    functions: Sequence[Function], now: datetime, owned: QuerySet[CronSchedule]
) -> None:
    """One ``CronSchedule`` row per cron trigger of ``functions``; a new one starts at its next
    tick from now, an unchanged one keeps its place, and one of ``owned`` (the schedules this
    source of functions syncs: the code's, or one SDK app's) no longer wanted is deleted (its
    function stops firing)."""
    wanted = {(f.id, t.cron): t for f in functions for t in f.crons}
    existing = {(s.function_id, s.cron): s for s in owned}
    for key, schedule in existing.items():
        if key not in wanted:
            schedule.delete()
    for (function_id, cron), trigger in wanted.items():
        row = existing.get((function_id, cron))
        if row is not None:
            if row.jitter != (trigger.jitter or ""):
                row.jitter = trigger.jitter or ""
                row.save(update_fields=["jitter"])
            continue
        first = trigger.schedule.next_after(now)
        if first is not None:
            CronSchedule.objects.create(
                function_id=function_id, cron=cron, jitter=trigger.jitter or "", next_tick_at=first
            )
