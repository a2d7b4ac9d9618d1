"""Throttle and concurrency at the moment a gated run would start a turn.

A run's limits were evaluated when it was created (``ingest.flow``) and stored on it
(``run.gates``): its throttle key, capacity and interval, and up to two concurrency keys with
their limits. ``admit`` runs inside ``FunctionRunQuerySet.claim_again``'s transaction, with the
run's row locked.

Concurrency limits executing steps, not runs: a run holds its slots for one turn (from its
claim until it pauses or ends), so a run that sleeps or waits holds none. A slot is free again
as soon as its holder is no longer Running under the lease that took it, which costs no write
(``ConcurrencySlot.objects.free``); ``release`` then hands the turn to the first run waiting
for that key. A run that finds no slot waits, in priority order, and is not charged a retry.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from django_inngest import database, executor
from django_inngest.conf import settings
from django_inngest.models import (
    Claim,
    ConcurrencySlot,
    FlowLimit,
    FunctionRun,
    RunStatus,
    WaitKind,
)


def concurrency_keys(run: FunctionRun) -> list[tuple[str, int]]:
    return [(entry["key"], int(entry["limit"])) for entry in run.gates.get("concurrency", ())]


def admit(run: FunctionRun, owner: str, now: datetime) -> bool:
    """May this gated run start a turn now? If not, it is parked and False returned."""
    recheck = now + timedelta(seconds=settings.LEASE_SECONDS)
    keys = concurrency_keys(run)
    for key, _ in keys:
        # In order: a run waiting for this key from an earlier position goes first.
        if FunctionRun.objects.waiting_ahead_of(run, key):
            FunctionRun.objects.park(run, WaitKind.CONCURRENCY, recheck, key)
            return False
    blocked = ConcurrencySlot.objects.acquire(keys, run.run_id, owner, now) if keys else None
    if blocked is not None:
        # The recheck covers a wake-up that never comes (a holder whose worker died).
        FunctionRun.objects.park(run, WaitKind.CONCURRENCY, recheck, blocked)
        return False
    throttle: dict[str, Any] | None = run.gates.get("throttle")
    if throttle and run.started_at is None:  # Inngest throttles run starts, not steps
        allow_at = FlowLimit.objects.take(
            throttle["key"],
            capacity=int(throttle["capacity"]),
            interval=timedelta(seconds=float(throttle["interval"])),
            now=now,
            # A run refused for the first time joins the queue's tail; one refused again (its
            # turn came a moment early) retries as soon as GCRA allows.
            queue=run.wait_kind != WaitKind.THROTTLE,
        )
        if allow_at is not None:
            # Slots just taken free themselves: the run is not Running under this owner.
            FunctionRun.objects.park(run, WaitKind.THROTTLE, allow_at, None)
            return False
    return True


def admit_new(
    run_ids: Sequence[str], owner: str, now: datetime, lease: timedelta
) -> dict[str, Claim]:
    """Admit a batch's never-started gated runs together, as ``claim_new`` takes plain ones:
    per group of runs with the same limits, one query for each key's free slots and one GCRA
    update, then one UPDATE claiming the admitted and one parking the rest. Resumed and
    recovered runs go through ``admit``, one at a time."""
    claims: dict[str, Claim] = {}
    with database.atomic():
        candidates = list(
            FunctionRun.objects.loaded()
            .select_for_update(skip_locked=True, of=("self",))
            .filter(
                pk__in=run_ids,
                gated=True,
                status=RunStatus.QUEUED,
                started_at__isnull=True,
                lease_owner="",
                ready_at__lte=now,
            )
            .order_by("queue_at", "pk")
        )
        groups: dict[str, list[FunctionRun]] = defaultdict(list)
        for run in candidates:
            groups[json.dumps(run.gates, sort_keys=True)].append(run)
        recheck = now + timedelta(seconds=settings.LEASE_SECONDS)
        admitted: list[FunctionRun] = []
        for group in groups.values():
            admitted += _admit_group(group, owner, now, recheck)
        FunctionRun.objects.claim_admitted(admitted, owner, now, lease)
    for run in admitted:
        claims[run.run_id] = Claim(run, recovered=False, first=True)
    return claims


def _admit_group(
    group: list[FunctionRun], owner: str, now: datetime, recheck: datetime
) -> list[FunctionRun]:
    """Runs with the same limits, in queue order: the first ones that fit start."""
    keys = concurrency_keys(group[0])
    for key, _ in keys:
        if FunctionRun.objects.waiting_ahead_of(group[0], key):
            FunctionRun.objects.park_many([r.pk for r in group], WaitKind.CONCURRENCY, recheck, key)
            return []
    fits = len(group)
    slots: dict[str, list[ConcurrencySlot]] = {}
    for key, limit in keys:
        slots[key] = ConcurrencySlot.objects.take_free(key, limit, now, len(group))
        if len(slots[key]) < fits:
            fits, blocked = len(slots[key]), key
    if fits < len(group):
        waiting = [r.pk for r in group[fits:]]
        FunctionRun.objects.park_many(waiting, WaitKind.CONCURRENCY, recheck, blocked)
    admitted = group[:fits]
    throttle: dict[str, Any] | None = group[0].gates.get("throttle")
    if throttle and admitted:
        retries = FlowLimit.objects.take_many(
            throttle["key"],
            len(admitted),
            capacity=int(throttle["capacity"]),
            interval=timedelta(seconds=float(throttle["interval"])),
            now=now,
        )
        for run, retry_at in zip(admitted, retries, strict=True):
            if retry_at is not None:
                FunctionRun.objects.park(run, WaitKind.THROTTLE, retry_at, None)
        admitted = [
            run for run, retry_at in zip(admitted, retries, strict=True) if retry_at is None
        ]
    ConcurrencySlot.objects.hold(
        [(slots[key][i], run.run_id) for key, _ in keys for i, run in enumerate(admitted)], owner
    )
    return admitted


def release(runs: list[FunctionRun]) -> None:
    """Gated runs paused or ended: wake the first waiter of each of their concurrency keys
    (dispatched once the caller's transaction commits)."""
    now = timezone.now()
    woken = [
        run_id
        for key in dict.fromkeys(k for run in runs if run.gated for k, _ in concurrency_keys(run))
        if (run_id := FunctionRun.objects.wake_next_waiting(key, now)) is not None
    ]
    if woken:
        executor.dispatch_on_commit(woken)
