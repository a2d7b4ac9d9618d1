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

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from django_inngest import executor
from django_inngest.conf import settings
from django_inngest.models import ConcurrencySlot, FlowLimit, FunctionRun, WaitKind


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
