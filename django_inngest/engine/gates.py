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
    """Admit a batch's never-started gated runs together, as ``claim_new`` takes plain ones,
    in a fixed number of statements whatever the number of keys: who waits ahead on each key,
    each key's free slots, one GCRA update per throttle key, one UPDATE claiming the admitted,
    one parking the rest. Resumed and recovered runs go through ``admit``, one at a time."""
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
        if not candidates:
            return {}
        groups: dict[str, list[FunctionRun]] = defaultdict(list)
        for run in candidates:
            groups[json.dumps(run.gates, sort_keys=True)].append(run)
        wanted: dict[str, tuple[int, int]] = {}  # key -> (limit, runs that want a slot)
        for group in groups.values():
            for key, limit in concurrency_keys(group[0]):
                wanted[key] = (limit, wanted.get(key, (limit, 0))[1] + len(group))
        ahead = FunctionRun.objects.first_waiting(set(wanted))
        free = ConcurrencySlot.objects.take_free_many(wanted, now)
        recheck = now + timedelta(seconds=settings.LEASE_SECONDS)
        parked: dict[str, str] = {}  # run -> the concurrency key it waits for
        admitted: list[FunctionRun] = []
        holds: list[tuple[ConcurrencySlot, str]] = []
        for group in groups.values():
            starting = _fit(group, ahead, free, parked)
            starting = _throttle(starting, now)
            holds += [
                (free[key].pop(0), run.run_id)
                for run in starting
                for key, _ in concurrency_keys(run)
            ]
            admitted += starting
        FunctionRun.objects.park_for_slots(parked, recheck)
        ConcurrencySlot.objects.hold(holds, owner)
        FunctionRun.objects.claim_admitted(admitted, owner, now, lease)
    return {run.run_id: Claim(run, recovered=False, first=True) for run in admitted}


def _fit(
    group: list[FunctionRun],
    ahead: dict[str, tuple[datetime, str]],
    free: dict[str, list[ConcurrencySlot]],
    parked: dict[str, str],
) -> list[FunctionRun]:
    """The runs of a group (same limits, queue order) that may start: none if a run waits
    ahead of them on a key, else as many as every key has free slots; the rest wait."""
    keys = [key for key, _ in concurrency_keys(group[0])]
    first = group[0]
    for key in keys:
        if key in ahead and ahead[key] < (first.queue_at, first.pk):
            parked.update({run.pk: key for run in group})
            return []
    fits = min([len(group)] + [len(free.get(key, [])) for key in keys])
    for run in group[fits:]:
        parked[run.pk] = min(keys, key=lambda k: len(free.get(k, [])))
    # Reserve the slots for this group: the next group of the same key sees what is left.
    return group[:fits]


def _throttle(runs: list[FunctionRun], now: datetime) -> list[FunctionRun]:
    """Of runs with one throttle, those it lets start now; the others wait for their turn."""
    throttle: dict[str, Any] | None = runs[0].gates.get("throttle") if runs else None
    if not throttle:
        return runs
    retries = FlowLimit.objects.take_many(
        throttle["key"],
        # A run refused before comes back at its turn: refused again, it does not requeue.
        [run.wait_kind != WaitKind.THROTTLE for run in runs],
        capacity=int(throttle["capacity"]),
        interval=timedelta(seconds=float(throttle["interval"])),
        now=now,
    )
    for run, retry_at in zip(runs, retries, strict=True):
        if retry_at is not None:
            FunctionRun.objects.park(run, WaitKind.THROTTLE, retry_at, None)
    return [run for run, retry_at in zip(runs, retries, strict=True) if retry_at is None]


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
