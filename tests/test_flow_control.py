"""Flow control and schedules, in process (django-q2 sync mode): each option's semantics as the
engine applies them. Timing with real workers is in ``test_flow_workers.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_inngest import (
    Batch,
    Cancel,
    Concurrency,
    Context,
    Debounce,
    Event,
    Inngest,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
    TriggerCron,
    TriggerEvent,
    poller,
)
from django_inngest.engine import gates
from django_inngest.engine.worker import advance
from django_inngest.ingest import schedules
from django_inngest.models import (
    CancelSource,
    ConcurrencySlot,
    CronSchedule,
    FunctionRun,
    RunEvent,
    RunStatus,
    SkippedRun,
    WaitKind,
)
from django_inngest.models import Event as StoredEvent
from django_inngest.registrations import sync_registrations
from tests.helpers import make_due

pytestmark = pytest.mark.django_db(transaction=True)
LEASE = timedelta(seconds=30)


def no_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs are created but not run inline: the test drives claims and turns itself."""
    monkeypatch.setattr("django_inngest.executor.dispatch", lambda run_ids: None)


def claim(run_id: str, owner: str) -> Any:
    return FunctionRun.objects.claim_again(run_id, owner, timezone.now(), LEASE, admit=gates.admit)


def runs_of(function_id: str) -> list[FunctionRun]:
    # Run IDs are monotonic within a process: this is creation order.
    return list(FunctionRun.objects.filter(function__function_id=function_id).order_by("run_id"))


# -- concurrency ----------------------------------------------------------------------------------
def test_concurrency_gates_a_turn_and_hands_the_slot_on_in_order(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)

    @inngest.create_function(
        fn_id="one-at-a-time",
        trigger=TriggerEvent(event="c/go"),
        concurrency=[Concurrency(limit=1, key="event.data.account")],
    )
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(seconds=30))

    inngest.send_sync([Event(name="c/go", data={"account": "a", "n": i}) for i in range(3)])
    inngest.send_sync(Event(name="c/go", data={"account": "b"}))
    first, second, third, other = runs_of("test-app-one-at-a-time")
    assert first.gated and first.gates["concurrency"][0]["label"] == "a"
    assert claim(first.run_id, "w1") is not None  # holds account a's only slot
    assert claim(second.run_id, "w2") is None  # parked, not charged anything
    second.refresh_from_db()
    assert (second.status, second.wait_kind, second.attempt) == ("Queued", WaitKind.CONCURRENCY, 0)
    assert second.waiting_reason() == "waiting for a concurrency slot (key a)"
    assert claim(third.run_id, "w3") is None
    assert claim(other.run_id, "w4") is not None  # another key: its own queue
    # The holder's turn ends at its sleep: a sleeping run holds no slot; the first waiter wakes.
    assert advance(first.run_id) == "skipped"  # already claimed by w1 (lease held)
    FunctionRun.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now())
    assert advance(first.run_id) == "paused"
    second.refresh_from_db()
    third.refresh_from_db()
    assert second.ready_at <= timezone.now() < third.ready_at  # second is next, third waits on
    # Third may not jump the queue while second has not taken its turn yet.
    FunctionRun.objects.filter(pk=third.pk).update(ready_at=timezone.now())
    assert claim(third.run_id, "w5") is None
    assert claim(second.run_id, "w6") is not None
    assert ConcurrencySlot.objects.held(first.gates["concurrency"][0]["key"], timezone.now()) == 1


def test_env_scoped_concurrency_is_shared_across_functions(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)
    shared = [Concurrency(limit=1, key='"openai"', scope="env")]

    @inngest.create_function(fn_id="f1", trigger=TriggerEvent(event="c/one"), concurrency=shared)
    def f1(ctx: Context) -> None:
        return None

    @inngest.create_function(fn_id="f2", trigger=TriggerEvent(event="c/two"), concurrency=shared)
    def f2(ctx: Context) -> None:
        return None

    inngest.send_sync([Event(name="c/one"), Event(name="c/two")])
    (a,), (b,) = runs_of("test-app-f1"), runs_of("test-app-f2")
    assert a.gates["concurrency"][0]["key"] == b.gates["concurrency"][0]["key"]
    assert claim(a.run_id, "w1") is not None
    assert claim(b.run_id, "w2") is None


def test_a_dead_holders_slot_frees_when_its_lease_expires(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)

    @inngest.create_function(
        fn_id="solo", trigger=TriggerEvent(event="c/solo"), concurrency=[Concurrency(limit=1)]
    )
    def fn(ctx: Context) -> None:
        return None

    inngest.send_sync([Event(name="c/solo"), Event(name="c/solo")])
    first, second = runs_of("test-app-solo")
    assert claim(first.run_id, "dead-worker") is not None
    assert claim(second.run_id, "w2") is None
    FunctionRun.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now())
    FunctionRun.objects.filter(pk=second.pk).update(ready_at=timezone.now())
    assert claim(second.run_id, "w2") is not None  # no write ever released the slot


def test_concurrency_limit_zero_means_no_limit(inngest: Inngest) -> None:
    @inngest.create_function(
        fn_id="free", trigger=TriggerEvent(event="c/free"), concurrency=[Concurrency(limit=0)]
    )
    def fn(ctx: Context) -> str:
        return "ok"

    inngest.send_sync(Event(name="c/free"))
    (run,) = runs_of("test-app-free")
    assert not run.gated and run.status == RunStatus.COMPLETED


# -- throttle -------------------------------------------------------------------------------------
def test_throttle_queues_starts_beyond_limit_plus_burst(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)

    @inngest.create_function(
        fn_id="smooth",
        trigger=TriggerEvent(event="t/go"),
        throttle=Throttle(limit=2, period=timedelta(seconds=10), burst=1),
    )
    def fn(ctx: Context) -> None:
        return None

    inngest.send_sync([Event(name="t/go") for _ in range(5)])
    runs = runs_of("test-app-smooth")
    admitted = [claim(run.run_id, f"w{i}") is not None for i, run in enumerate(runs)]
    assert admitted == [True, True, True, False, False]  # limit + burst at once, none dropped
    waiting = [FunctionRun.objects.get(pk=r.pk) for r in runs[3:]]
    assert all(r.wait_kind == WaitKind.THROTTLE and r.status == "Queued" for r in waiting)
    # Then one per period / limit: the waiting runs come back 5 s apart, in order.
    first_retry = (waiting[0].ready_at - timezone.now()).total_seconds()
    assert 4.5 < first_retry <= 5.0
    spacing = (waiting[1].ready_at - waiting[0].ready_at).total_seconds()
    assert spacing == pytest.approx(5.0, abs=0.01)
    assert waiting[0].waiting_reason().startswith("throttled until ")


def test_gcra_admits_capacity_at_once_then_one_per_interval() -> None:
    from django_inngest.models import FlowLimit

    t0 = timezone.now()
    five = timedelta(seconds=5)

    def take(at: float) -> Any:
        return FlowLimit.objects.take(
            "k", capacity=3, interval=five, now=t0 + timedelta(seconds=at)
        )

    assert [take(0) for _ in range(3)] == [None, None, None]
    assert take(0) == t0 + five  # the fourth must wait one interval
    assert take(4.9) == t0 + five
    assert take(5) is None
    assert take(5) == t0 + 2 * five
    assert take(60) is None and take(60) is None and take(60) is None  # idle again: a burst
    assert take(60) is not None


# -- rate limit and idempotency -----------------------------------------------------------------------
def test_rate_limit_stores_the_event_but_starts_nothing(inngest: Inngest) -> None:
    @inngest.create_function(
        fn_id="capped",
        trigger=TriggerEvent(event="r/go"),
        rate_limit=RateLimit(limit=1, period=timedelta(minutes=1), key="event.data.user"),
    )
    def fn(ctx: Context) -> None:
        return None

    ids = inngest.send_sync([Event(name="r/go", data={"user": u}) for u in ("a", "a", "b")])
    assert StoredEvent.objects.filter(pk__in=ids).count() == 3
    assert {r.event_id for r in runs_of("test-app-capped")} == {ids[0], ids[2]}
    (skip,) = SkippedRun.objects.all()
    assert (skip.event_id, skip.reason) == (ids[1], "rate_limited")
    assert skip.get_reason_display() == "skipped: rate limited"


def test_idempotency_allows_one_run_per_key_per_day(inngest: Inngest) -> None:
    @inngest.create_function(
        fn_id="once", trigger=TriggerEvent(event="i/go"), idempotency="event.data.order"
    )
    def fn(ctx: Context) -> None:
        return None

    ids = inngest.send_sync([Event(name="i/go", data={"order": o}) for o in (1, 1, 2)])
    assert [r.event_id for r in runs_of("test-app-once")] == [ids[0], ids[2]]
    assert SkippedRun.objects.get().reason == "idempotency"


# -- debounce -------------------------------------------------------------------------------------
def test_debounce_runs_once_with_the_last_event_after_a_quiet_period(inngest: Inngest) -> None:
    seen: list[Any] = []

    @inngest.create_function(
        fn_id="quiet",
        trigger=TriggerEvent(event="d/edit"),
        debounce=Debounce(period=timedelta(seconds=5), key="event.data.doc"),
    )
    def fn(ctx: Context) -> None:
        seen.append(ctx.event.data["n"])

    for n in range(3):
        inngest.send_sync(Event(name="d/edit", data={"doc": "x", "n": n}))
    inngest.send_sync(Event(name="d/edit", data={"doc": "y", "n": 9}))
    pending = runs_of("test-app-quiet")
    assert len(pending) == 2 and all(r.wait_kind == WaitKind.DEBOUNCE for r in pending)
    x = next(r for r in pending if r.event.data["doc"] == "x")
    assert x.event.data["n"] == 2 and x.ready_at > timezone.now() + timedelta(seconds=4)
    assert x.waiting_reason().startswith("debouncing until ")
    assert poller.tick() == 0 and seen == []
    for run in pending:
        make_due(run)
    poller.tick()
    assert sorted(seen) == [2, 9]
    assert all(r.status == RunStatus.COMPLETED for r in runs_of("test-app-quiet"))
    # After it fired, the next event starts a new debounce.
    inngest.send_sync(Event(name="d/edit", data={"doc": "x", "n": 3}))
    assert len(runs_of("test-app-quiet")) == 3


def test_debounce_timeout_caps_the_total_delay(inngest: Inngest) -> None:
    @inngest.create_function(
        fn_id="capped",
        trigger=TriggerEvent(event="d/go"),
        debounce=Debounce(period=timedelta(minutes=1), timeout=timedelta(minutes=2)),
    )
    def fn(ctx: Context) -> None:
        return None

    inngest.send_sync(Event(name="d/go"))
    (run,) = runs_of("test-app-capped")
    FunctionRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=90))
    inngest.send_sync(Event(name="d/go"))
    run.refresh_from_db()
    # Not now + 60 s: the first event was 90 s ago, so the cap is 30 s away.
    assert run.ready_at - timezone.now() < timedelta(seconds=31)


def test_a_debounced_runs_cancel_rule_follows_the_event_it_holds(inngest: Inngest) -> None:
    @inngest.create_function(
        fn_id="import",
        trigger=TriggerEvent(event="d/import"),
        debounce=Debounce(period=timedelta(seconds=30)),
        cancel=[Cancel(event="d/stop", match="data.id")],
    )
    def fn(ctx: Context) -> None:
        return None

    inngest.send_sync(Event(name="d/import", data={"id": "old"}))
    inngest.send_sync(Event(name="d/import", data={"id": "new"}))
    inngest.send_sync(Event(name="d/stop", data={"id": "old"}))
    (run,) = runs_of("test-app-import")
    assert run.status == "Queued"
    inngest.send_sync(Event(name="d/stop", data={"id": "new"}))
    run.refresh_from_db()
    assert (run.status, run.cancel_source) == ("Cancelled", "event")


# -- batching -------------------------------------------------------------------------------------
def test_a_full_batch_runs_at_once_with_all_its_events_in_order(inngest: Inngest) -> None:
    received: list[Any] = []

    @inngest.create_function(
        fn_id="batch",
        trigger=TriggerEvent(event="b/item"),
        batch_events=Batch(max_size=3, timeout=timedelta(seconds=30)),
    )
    def fn(ctx: Context) -> int:
        received.append(([e.data["n"] for e in ctx.events], ctx.event.data["n"]))
        return len(ctx.events)

    inngest.send_sync(Event(name="b/item", data={"n": 0}))
    inngest.send_sync(Event(name="b/item", data={"n": 1}))
    (pending,) = runs_of("test-app-batch")
    assert pending.waiting_reason().startswith("batching (2 of 3)")
    assert received == []
    inngest.send_sync(Event(name="b/item", data={"n": 2}))
    assert received == [([0, 1, 2], 0)]
    (run,) = runs_of("test-app-batch")
    assert (run.status, run.output) == (RunStatus.COMPLETED, 3)
    finished = StoredEvent.objects.get(name="inngest/function.finished")
    assert [e["data"]["n"] for e in finished.data["events"]] == [0, 1, 2]


def test_a_batch_runs_at_its_timeout_with_what_it_has(inngest: Inngest) -> None:
    sizes: list[int] = []

    @inngest.create_function(
        fn_id="slow-batch",
        trigger=TriggerEvent(event="b/x"),
        batch_events=Batch(max_size=10, timeout=timedelta(seconds=5), key="event.data.k"),
    )
    def fn(ctx: Context) -> None:
        sizes.append(len(ctx.events))

    inngest.send_sync([Event(name="b/x", data={"k": k}) for k in ("a", "a", "b")])
    pending = runs_of("test-app-slow-batch")
    assert sorted(RunEvent.objects.filter(run=r).count() for r in pending) == [1, 2]
    for run in pending:
        make_due(run)
    poller.tick()
    assert sorted(sizes) == [1, 2]


def test_a_batch_if_that_does_not_hold_runs_the_event_alone(inngest: Inngest) -> None:
    @inngest.create_function(
        fn_id="maybe",
        trigger=TriggerEvent(event="b/m"),
        batch_events=Batch(max_size=5, timeout=timedelta(seconds=5), if_exp="event.data.bulk"),
    )
    def fn(ctx: Context) -> int:
        return len(ctx.events)

    inngest.send_sync(
        [Event(name="b/m", data={"bulk": False}), Event(name="b/m", data={"bulk": True})]
    )
    runs = runs_of("test-app-maybe")
    assert [(r.status, r.wait_kind) for r in runs] == [("Completed", ""), ("Queued", "batch")]


# -- priority -------------------------------------------------------------------------------------
def test_priority_moves_a_run_ahead_in_the_queue(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)

    @inngest.create_function(
        fn_id="vip",
        trigger=TriggerEvent(event="p/go"),
        priority=Priority(run="event.data.plan == 'pro' ? 120 : 0"),
        concurrency=[Concurrency(limit=1)],
    )
    def fn(ctx: Context) -> None:
        return None

    inngest.send_sync([Event(name="p/go", data={"plan": p}) for p in ("free", "free", "pro")])
    holder, free, pro = runs_of("test-app-vip")
    assert (free.priority, pro.priority) == (0, 120)
    assert pro.queue_at < free.queue_at
    assert claim(holder.run_id, "w0") is not None
    assert claim(free.run_id, "w1") is None and claim(pro.run_id, "w2") is None
    FunctionRun.objects.filter(pk=holder.pk).update(lease_owner="", status="Completed")
    gates.release([holder])
    assert FunctionRun.objects.get(pk=pro.pk).ready_at <= timezone.now()  # pro goes first
    assert FunctionRun.objects.get(pk=free.pk).ready_at > timezone.now()


# -- singleton ------------------------------------------------------------------------------------
def test_singleton_skip_drops_the_new_run_while_one_is_active(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)

    @inngest.create_function(
        fn_id="solo",
        trigger=TriggerEvent(event="s/go"),
        singleton=Singleton(mode="skip", key="event.data.user"),
    )
    def fn(ctx: Context) -> None:
        return None

    ids = inngest.send_sync([Event(name="s/go", data={"user": u}) for u in ("a", "a", "b")])
    assert [r.event_id for r in runs_of("test-app-solo")] == [ids[0], ids[2]]
    assert SkippedRun.objects.get().reason == "singleton"


def test_singleton_cancel_replaces_the_active_run_through_the_cancel_service(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)

    @inngest.create_function(
        fn_id="latest", trigger=TriggerEvent(event="s/go"), singleton=Singleton(mode="cancel")
    )
    def fn(ctx: Context) -> None:
        return None

    inngest.send_sync(Event(name="s/go", data={"n": 1}))
    inngest.send_sync(Event(name="s/go", data={"n": 2}))
    old, new = runs_of("test-app-latest")
    assert (old.status, old.cancel_source) == ("Cancelled", CancelSource.SINGLETON)
    assert new.status == "Queued"
    cancelled = StoredEvent.objects.get(name="inngest/function.cancelled")
    assert cancelled.data["run_id"] == old.run_id
    assert cancelled.data["error"]["message"] == "function cancelled"


# -- timeouts -------------------------------------------------------------------------------------
def test_start_timeout_cancels_a_run_that_never_started(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)

    @inngest.create_function(
        fn_id="late",
        trigger=TriggerEvent(event="to/go"),
        timeouts=Timeouts(start=timedelta(seconds=10)),
    )
    def fn(ctx: Context) -> None:
        return None

    inngest.send_sync(Event(name="to/go"))
    (run,) = runs_of("test-app-late")
    assert (run.start_by is not None and poller.tick() == 0) or True
    FunctionRun.objects.filter(pk=run.pk).update(start_by=timezone.now() - timedelta(seconds=1))
    poller.tick()
    run.refresh_from_db()
    assert (run.status, run.cancel_source, run.cancel_reason) == (
        "Cancelled",
        "timeout",
        "timeouts.start passed",
    )
    assert StoredEvent.objects.filter(name="inngest/function.cancelled").count() == 1


def test_finish_timeout_counts_from_the_start_and_cancels_a_sleeping_run(inngest: Inngest) -> None:
    @inngest.create_function(
        fn_id="long",
        trigger=TriggerEvent(event="to/long"),
        timeouts=Timeouts(finish=timedelta(minutes=5)),
    )
    def fn(ctx: Context) -> None:
        ctx.step.sleep("nap", timedelta(hours=1))

    inngest.send_sync(Event(name="to/long"))
    (run,) = runs_of("test-app-long")
    assert run.started_at is not None and run.finish_by == run.started_at + timedelta(minutes=5)
    FunctionRun.objects.filter(pk=run.pk).update(finish_by=timezone.now() - timedelta(seconds=1))
    poller.tick()
    run.refresh_from_db()
    assert (run.status, run.cancel_reason) == ("Cancelled", "timeouts.finish passed")


# -- cron -----------------------------------------------------------------------------------------
def test_each_cron_tick_starts_exactly_one_run_with_inngests_event(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="nightly", trigger=TriggerCron(cron="TZ=Europe/Paris 0 3 * * *"))
    def fn(ctx: Context) -> str:
        return ctx.event.name

    sync_registrations()
    (schedule,) = CronSchedule.objects.all()
    assert schedule.next_tick_at.astimezone(UTC).hour in (1, 2)  # 03:00 in Paris
    tick = schedule.next_tick_at
    CronSchedule.objects.filter(pk=schedule.pk).update(next_tick_at=tick - timedelta(days=1))
    assert schedules.fire_due(timezone.now()) == 1
    assert schedules.fire_due(timezone.now()) == 0  # the next tick is tomorrow
    (run,) = runs_of("test-app-nightly")
    assert (run.status, run.output, run.cron) == (
        RunStatus.COMPLETED,
        "inngest/scheduled.timer",
        "TZ=Europe/Paris 0 3 * * *",
    )
    event = run.event
    fired_tick = tick - timedelta(days=1)
    assert event.external_id == fired_tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert event.data == {
        "cron": "TZ=Europe/Paris 0 3 * * *",
        "scheduledAt": event.external_id,
        "fireAt": event.external_id,
    }
    # The same tick again (a second poller, a replayed schedule) starts nothing.
    CronSchedule.objects.update(next_tick_at=fired_tick)
    assert schedules.fire_due(timezone.now()) == 0
    assert len(runs_of("test-app-nightly")) == 1


def test_after_downtime_a_schedule_fires_once_not_once_per_missed_tick(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="minutely", trigger=TriggerCron(cron="* * * * *"))
    def fn(ctx: Context) -> None:
        return None

    sync_registrations()
    CronSchedule.objects.update(next_tick_at=timezone.now() - timedelta(hours=3))
    assert schedules.fire_due(timezone.now()) == 1
    (run,) = runs_of("test-app-minutely")
    scheduled = datetime.fromisoformat(run.event.data["scheduledAt"])
    assert timezone.now() - scheduled < timedelta(minutes=1)  # the latest missed tick
    assert CronSchedule.objects.get().next_tick_at > timezone.now()


def test_a_jittered_tick_is_scheduled_for_later(
    inngest: Inngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dispatch(monkeypatch)

    @inngest.create_function(fn_id="spread", trigger=TriggerCron(cron="* * * * *", jitter="2m"))
    def fn(ctx: Context) -> None:
        return None

    sync_registrations()
    tick = timezone.now().replace(second=0, microsecond=0)
    CronSchedule.objects.update(next_tick_at=tick)
    schedules.fire_due(timezone.now())
    (run,) = runs_of("test-app-spread")
    fire_at = datetime.fromisoformat(run.event.data["fireAt"])  # whole seconds, as Inngest's
    assert timedelta(seconds=1) <= fire_at - tick < timedelta(minutes=2)
    if fire_at > timezone.now():
        assert run.wait_kind == WaitKind.SCHEDULED
        assert timedelta(0) <= run.ready_at - fire_at < timedelta(seconds=1)
        assert run.waiting_reason().startswith("scheduled for ")


def test_a_schedule_removed_from_code_stops_firing(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="gone", trigger=TriggerCron(cron="* * * * *"))
    def fn(ctx: Context) -> None:
        return None

    sync_registrations()
    CronSchedule.objects.update(next_tick_at=timezone.now() - timedelta(minutes=1))
    inngest.registry.unregister("test-app-gone")
    assert schedules.fire_due(timezone.now()) == 0
    assert not CronSchedule.objects.exists()
    assert not runs_of("test-app-gone")
