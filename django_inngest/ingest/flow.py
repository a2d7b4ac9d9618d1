"""Flow control when an event starts a run of a function (Inngest's order):

1. rate limit and idempotency drop the event for this function (``SkippedRun``);
2. debounce holds one run per key, taking each newer event, until ``period`` passes quietly;
3. batching gathers events per key into one run, until ``max_size`` or ``timeout``;
4. singleton skips the new run, or cancels the active one, per key;
5. the run carries what later gates need (``run.gates``): its priority, throttle and
   concurrency keys (``engine.gates`` admits it), and its timeouts.

Held runs (debounced, batching) are ordinary Queued runs waiting for their ``ready_at``, so the
poller fires them like any timer, and operators see them. Keys are CEL over ``event``; each
lookup is by key, through an index.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError

from django_inngest import database, executor, expressions
from django_inngest.durations import normalize_duration
from django_inngest.exceptions import ExpressionError
from django_inngest.flow_control.options import RateLimit, priority_factor
from django_inngest.function import Function
from django_inngest.ingest import run_rows
from django_inngest.models import (
    Event,
    FlowLimit,
    FunctionRun,
    Listener,
    RunEvent,
    SkippedRun,
    SkipReason,
    WaitKind,
)
from django_inngest.models.flow import gcra_capacity, interval_of, rate_limit_capacity
from django_inngest.registrations import ensure_registered
from django_inngest.sql import insert_rows

logger = logging.getLogger(__name__)
#: Inngest turns ``idempotency`` into a rate limit of one run per key per 24 h.
IDEMPOTENCY_PERIOD = timedelta(hours=24)
#: What a key that fails to evaluate becomes (Inngest: one shared "<invalid>" key).
INVALID_KEY = "<invalid>"


#: Cancels an active singleton run that a new one replaces (``delivery.supersede``), given by
#: ``events.send_events``: run creation itself never reaches up into the engine.
Supersede = Callable[[str, str], None]


def is_controlled(function: Function) -> bool:
    return bool(function.flow.to_config())


@dataclass(frozen=True)
class _Key:
    """An evaluated key: its hash (stored, indexed) and its text (shown to operators)."""

    hash: str
    label: str


def _key(owner: str, kind: str, expression: str | None, payload: dict[str, Any]) -> _Key | None:
    """The key ``expression`` gives for this event, per owner (a function, or a concurrency
    scope) and kind; None when it is ``false`` (Inngest: "not limited"). No expression: one
    key for the whole owner."""
    label = ""
    if expression:
        try:
            value = expressions.value_of(expression, event=payload)
        except (expressions.NoValue, ExpressionError) as exc:
            logger.warning("%s key of %s failed (%s): using %r", kind, owner, exc, INVALID_KEY)
            value = INVALID_KEY
        if value is False:
            return None
        label = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    digest = hashlib.sha256(f"{owner}\x00{kind}\x00{label}".encode()).hexdigest()[:40]
    return _Key(f"{kind}:{digest}", label[:200])


def start(
    function: Function,
    event: Event,
    payload: dict[str, Any],
    now: datetime,
    supersede: Supersede,
) -> list[FunctionRun]:
    """Apply the function's flow control to one triggering event. Returns the runs the caller
    inserts with its batch; runs this function inserts itself (held, singleton) are not
    returned, and a dropped event returns none."""
    flow = function.flow
    limit = flow.rate_limit
    if flow.idempotency:
        limit = RateLimit(limit=1, period=IDEMPOTENCY_PERIOD, key=flow.idempotency)
    if limit is not None and not _within_rate_limit(function, limit, payload, now):
        reason = SkipReason.IDEMPOTENCY if flow.idempotency else SkipReason.RATE_LIMITED
        _skip(function, event, reason, now)
        return []
    if flow.debounce is not None:
        _debounce(function, event, payload, now)
        return []
    batch = flow.batch_events
    if batch is not None and (
        not batch.if_exp or expressions.evaluate(batch.if_exp, event=payload)
    ):
        _append_to_batch(function, event, payload, now)
        return []
    run = run_rows.new_run(function, event, now, **gated_fields(function, payload, now))
    if flow.singleton is not None:
        _start_singleton(function, run, event, payload, now, supersede)
        return []
    return [run]


def gated_fields(
    function: Function, payload: dict[str, Any], now: datetime, *, batched: bool = False
) -> dict[str, Any]:
    """A new run's priority, throttle and concurrency gates, and timeouts."""
    flow = function.flow
    fields: dict[str, Any] = {"queue_at": now}
    gates: dict[str, Any] = {}
    if flow.priority is not None:
        try:
            value = expressions.value_of(flow.priority.run, event=payload)
        except (expressions.NoValue, ExpressionError):
            value = 0  # Inngest ignores a failing priority expression
        fields["priority"] = priority_factor(value)
        fields["queue_at"] = now - timedelta(seconds=fields["priority"])
    if flow.throttle is not None:
        throttle = flow.throttle
        key = _key(function.id, "throttle", throttle.key, payload)
        if key is not None:
            period = normalize_duration(throttle.period, field="Throttle.period")
            gates["throttle"] = {
                "key": key.hash,
                "label": key.label,
                "capacity": gcra_capacity(throttle.limit, throttle.burst or 0),
                "interval": interval_of(period, throttle.limit).total_seconds(),
            }
    for entry in flow.concurrency or ():
        if not entry.limit:
            continue  # 0 means no limit
        # fn scope: this function's queue; env/account: shared by every function with the key.
        owner = function.id if (entry.scope or "fn") == "fn" else f"scope:{entry.scope}"
        key = _key(owner, "concurrency", entry.key, payload)
        if key is not None:
            gates.setdefault("concurrency", []).append(
                {"key": key.hash, "label": key.label, "limit": entry.limit}
            )
    if gates:
        fields["gates"], fields["gated"] = gates, True
    timeouts = flow.timeouts
    if timeouts is not None and timeouts.start is not None and not batched:
        fields["start_by"] = now + normalize_duration(timeouts.start, field="Timeouts.start")
    if timeouts is not None and timeouts.finish is not None:
        fields["finish_after"] = normalize_duration(timeouts.finish, field="Timeouts.finish")
    return fields


def _within_rate_limit(
    function: Function, limit: RateLimit, payload: dict[str, Any], now: datetime
) -> bool:
    key = _key(function.id, "ratelimit", limit.key, payload)
    if key is None:
        return True
    period = normalize_duration(limit.period, field="RateLimit.period")
    refused_until = FlowLimit.objects.take(
        key.hash,
        capacity=rate_limit_capacity(limit.limit),
        interval=interval_of(period, limit.limit),
        now=now,
    )
    return refused_until is None


def _skip(function: Function, event: Event, reason: SkipReason, now: datetime) -> None:
    ensure_registered(function)
    SkippedRun.objects.create(event=event, function_id=function.id, reason=reason, created_at=now)
    logger.info("Run skipped function=%s event=%s reason=%s", function.id, event.pk, reason)


def _insert_one(
    run: FunctionRun, function: Function, payload: dict[str, Any], now: datetime
) -> bool:
    """Insert one run (and its cancel rules) under a savepoint; False if a uniqueness rule (one
    pending debounce, one open batch, one active singleton per key) refused it."""
    ensure_registered(function)
    try:
        with database.atomic():
            run_rows.insert([run], run_rows.cancel_listeners(run, function, payload, now), now)
    except IntegrityError:
        return False
    return True


# -- debounce ---------------------------------------------------------------------------------
def _debounce(function: Function, event: Event, payload: dict[str, Any], now: datetime) -> None:
    debounce = function.flow.debounce
    assert debounce is not None
    key = _key(function.id, "debounce", debounce.key, payload)
    label = key.hash if key is not None else f"debounce:{event.pk}"
    period = normalize_duration(debounce.period, field="Debounce.period")
    timeout = (
        normalize_duration(debounce.timeout, field="Debounce.timeout")
        if debounce.timeout is not None
        else None
    )
    for _ in range(3):  # a pending run that fires, or a rival insert, means one more look
        pending = (
            FunctionRun.objects.select_for_update(of=("self",))
            .select_related("event")
            .filter(
                function__function_id=function.id,
                debounce_key=label,
                status="Queued",
                wait_kind=WaitKind.DEBOUNCE,
            )
            .first()
        )
        if pending is None:
            fire_at = now + period if timeout is None else min(now + period, now + timeout)
            run = run_rows.new_run(
                function,
                event,
                now,
                ready_at=fire_at,
                wait_kind=WaitKind.DEBOUNCE,
                debounce_key=label,
                **gated_fields(function, payload, now),
            )
            if _insert_one(run, function, payload, now):
                return
            continue
        if event.ts < pending.event.ts:
            return  # an older event than the one held (Inngest: "out of order"): ignored
        fire_at = now + period
        if timeout is not None:
            fire_at = min(fire_at, pending.created_at + timeout)
        if FunctionRun.objects.extend_debounce(pending.run_id, event.pk, fire_at):
            # The held event changed: the run's cancel rules follow it.
            Listener.objects.filter(run_id=pending.run_id, kind="cancel").delete()
            pending.event = event
            insert_rows(run_rows.cancel_listeners(pending, function, payload, now))
            return
    raise RuntimeError(f"debounce of {function.id}: the pending run kept changing")


# -- batching ---------------------------------------------------------------------------------
def _append_to_batch(
    function: Function, event: Event, payload: dict[str, Any], now: datetime
) -> None:
    batch = function.flow.batch_events
    assert batch is not None
    key = _key(function.id, "batch", batch.key, payload)
    label = key.hash if key is not None else f"batch:{event.pk}"
    timeout = normalize_duration(batch.timeout, field="Batch.timeout") if batch.timeout else None
    for _ in range(3):
        pending = (
            FunctionRun.objects.select_for_update()
            .filter(
                function__function_id=function.id,
                batch_key=label,
                status="Queued",
                wait_kind=WaitKind.BATCH,
            )
            .first()
        )
        if pending is None:
            fields = gated_fields(function, payload, now, batched=True)
            fields.setdefault("gates", {})["batch_max"] = batch.max_size
            run = run_rows.new_run(
                function,
                event,
                now,
                ready_at=now + timeout if timeout else now,
                wait_kind=WaitKind.BATCH,
                batch_key=label,
                **fields,
            )
            if _insert_one(run, function, payload, now):
                RunEvent.objects.create(run=run, event=event, position=0)
                return
            continue
        size = RunEvent.objects.filter(run=pending).count()
        RunEvent.objects.create(run=pending, event=event, position=size)
        if size + 1 >= batch.max_size and FunctionRun.objects.close_batch(pending.run_id, now):
            executor.dispatch_on_commit([pending.run_id])
        return
    raise RuntimeError(f"batching of {function.id}: the open batch kept changing")


# -- singleton --------------------------------------------------------------------------------
def _start_singleton(
    function: Function,
    run: FunctionRun,
    event: Event,
    payload: dict[str, Any],
    now: datetime,
    supersede: Supersede,
) -> None:
    singleton = function.flow.singleton
    assert singleton is not None
    key = _key(function.id, "singleton", singleton.key, payload)
    if key is not None:
        run.singleton_key = key.hash
        active = FunctionRun.objects.active().filter(
            function__function_id=function.id, singleton_key=key.hash
        )
        holder = active.values_list("run_id", flat=True).first()
        if holder is not None and singleton.mode == "skip":
            _skip(function, event, SkipReason.SINGLETON, now)
            return
        if holder is not None:
            supersede(holder, f"singleton: replaced by a run for event {event.pk}")
    if not _insert_one(run, function, payload, now):
        # Another run took the key first ("rapid bursts may skip", as in Inngest).
        _skip(function, event, SkipReason.SINGLETON, now)
