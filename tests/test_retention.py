"""Retention: DJANGO_INNGEST_RETENTION, the workers' pruning and ``manage.py inngest_prune``."""

from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import models
from django.utils import timezone

from django_inngest.conf import settings as inngest_settings
from django_inngest.engine import maintenance, retention
from django_inngest.ids import new_ulid
from django_inngest.management.commands.inngest_prune import parse_duration
from django_inngest.models import (
    Event,
    FunctionRun,
    Listener,
    ListenerKind,
    RunStatus,
    StepRun,
)
from tests.api_fixtures import make_registration

pytestmark = pytest.mark.django_db(transaction=True)

NOW = timezone.now()
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)


def event_at(when: datetime, name: str = "r/e") -> Event:
    """An event received then, with a key minted then (as the engine mints them)."""
    return Event.objects.create(
        internal_id=new_ulid(int(when.timestamp() * 1000)),
        name=name,
        ts=int(when.timestamp() * 1000),
        received_at=when,
    )


def run_at(
    when: datetime, *, status: str = RunStatus.COMPLETED, event: Event | None = None, **fields: Any
) -> FunctionRun:
    ended = status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
    run = FunctionRun.objects.create(
        run_id=new_ulid(int(when.timestamp() * 1000)),
        function=make_registration(),
        event=event or event_at(when),
        status=status,
        created_at=when,
        started_at=when,
        ended_at=when + timedelta(seconds=5) if ended else None,
        cancelled_signal_sent=status == RunStatus.CANCELLED,
        **fields,
    )
    for position in range(2):
        StepRun.objects.create(
            run=run,
            step_id=f"s{position}",
            position=position,
            kind="run",
            status="Completed",
            started_at=when,
            ended_at=when,
        )
    return run


def exists(obj: Any) -> bool:
    return type(obj).objects.filter(pk=obj.pk).exists()


# -- the setting ----------------------------------------------------------------------------


def test_retention_defaults_to_30_days_and_takes_seconds_or_none(settings: Any) -> None:
    keep = inngest_settings.RETENTION
    assert keep == timedelta(days=30)
    settings.DJANGO_INNGEST_RETENTION = 3600
    keep = inngest_settings.RETENTION
    assert keep == timedelta(hours=1)
    settings.DJANGO_INNGEST_RETENTION = None
    assert inngest_settings.RETENTION is None
    assert retention.retention_cutoff(NOW) is None


@pytest.mark.parametrize(
    ("value", "check_id"),
    [
        (timedelta(0), "django_inngest.E003"),
        (timedelta(days=-1), "django_inngest.E003"),
        (-5, "django_inngest.E003"),
        ("30d", "django_inngest.E001"),
        (True, "django_inngest.E001"),
    ],
)
def test_a_bad_retention_is_reported(settings: Any, value: Any, check_id: str) -> None:
    settings.DJANGO_INNGEST_RETENTION = value
    found = [m for m in run_checks(tags=["django_inngest"]) if m.id == check_id]
    assert len(found) == 1 and "DJANGO_INNGEST_RETENTION" in found[0].msg


@pytest.mark.parametrize("value", [timedelta(days=7), 60, 0.5, None])
def test_a_good_retention_passes(settings: Any, value: Any) -> None:
    settings.DJANGO_INNGEST_RETENTION = value
    assert not [m for m in run_checks(tags=["django_inngest"]) if "RETENTION" in m.msg]


# -- what is pruned -------------------------------------------------------------------------


def test_pruning_deletes_old_ended_runs_and_free_events_and_keeps_the_rest() -> None:
    old_runs = [run_at(OLD, status=s) for s in ("Completed", "Failed", "Cancelled")]
    old_free_event = event_at(OLD, "inngest/function.finished")
    recent = run_at(RECENT)
    active = run_at(OLD, status=RunStatus.RUNNING)  # a year-long sleep, say
    outbox = run_at(OLD, status=RunStatus.CANCELLED)
    FunctionRun.objects.filter(pk=outbox.pk).update(cancelled_signal_sent=False)
    shared = event_at(OLD)  # triggered an old run and a live one
    run_at(OLD, event=shared)
    live_sibling = run_at(OLD, status=RunStatus.QUEUED, event=shared)
    parent = run_at(OLD)
    child = run_at(OLD, status=RunStatus.RUNNING, parent_run=parent, parent_step_id="inv")
    listener_run = run_at(OLD)
    Listener.objects.create(
        kind=ListenerKind.CANCEL,
        run=listener_run,
        event_name="x",
        trigger_event_id=listener_run.event_id,
        expires_at=NOW,
        created_at=OLD,
    )

    pruned = retention.Pruner().prune(NOW - timedelta(days=30))

    assert not any(exists(run) for run in old_runs)
    assert not StepRun.objects.filter(run_id__in=[r.pk for r in old_runs]).exists()
    assert not any(exists(run.event) for run in old_runs)
    assert not exists(old_free_event)
    assert not exists(parent) and not exists(listener_run)
    assert not Listener.objects.exists()
    child.refresh_from_db()
    assert child.parent_run_id is None  # unlinked, not deleted: it is still running
    for kept in (recent, active, outbox, live_sibling, child):
        assert exists(kept) and exists(kept.event)
    assert exists(shared)
    assert StepRun.objects.filter(run=recent).count() == 2
    # 3 old, 1 sharing the event, the parent, the listener's run.
    assert (pruned.runs, pruned.steps) == (6, 12)
    assert pruned.events == 5 + 1  # their own events (not the shared one), and the free one


def test_pruning_works_in_batches_across_passes() -> None:
    runs = [run_at(OLD - timedelta(minutes=n)) for n in range(7)]
    free = [event_at(OLD - timedelta(minutes=n)) for n in range(5)]
    pruner = retention.Pruner()
    cutoff = NOW - timedelta(days=30)
    first = pruner.prune(cutoff, budget_seconds=0, runs_batch=3, events_batch=4)
    assert first.runs == 3 and first.events == 0  # one batch, then the budget is spent
    passes = 1
    while pruner.prune(cutoff, budget_seconds=0, runs_batch=3, events_batch=4) or (
        pruner.events_after
    ):
        passes += 1
        assert passes < 20
    assert not FunctionRun.objects.exists()
    assert not Event.objects.filter(pk__in=[e.pk for e in free]).exists()
    assert not Event.objects.filter(pk__in=[r.event_id for r in runs]).exists()
    assert passes >= 4  # 7 runs by 3, then 12 events by 4


def test_the_oldest_runs_go_first() -> None:
    older, newer = run_at(OLD - timedelta(days=5)), run_at(OLD)
    assert retention.prune_runs_batch(NOW - timedelta(days=30), limit=1).runs == 1
    assert not exists(older) and exists(newer)


def test_workers_prune_in_their_housekeeping(settings: Any) -> None:
    old, recent = run_at(OLD), run_at(RECENT)
    settings.DJANGO_INNGEST_RETENTION = None
    maintenance.periodic_maintenance()
    assert exists(old)
    settings.DJANGO_INNGEST_RETENTION = timedelta(days=30)
    maintenance.periodic_maintenance()
    assert not exists(old) and exists(recent)
    settings.DJANGO_INNGEST_RETENTION = 3600  # seconds
    maintenance.periodic_maintenance()
    assert not exists(recent)


def test_a_pass_stops_at_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(6):
        run_at(OLD - timedelta(minutes=n))
    monkeypatch.setattr(retention, "BATCH_RUNS", 2)
    monkeypatch.setattr(retention, "PASS_BUDGET_SECONDS", 0)
    monkeypatch.setattr(retention, "pruner", retention.Pruner())
    assert retention.prune_some(NOW).runs == 2
    assert FunctionRun.objects.count() == 4


def test_every_foreign_key_to_runs_and_events_is_known() -> None:
    to_runs = {(r.table, r.column): r.on_delete for r in retention.references(FunctionRun)}
    assert to_runs[("django_inngest_steprun", "run_id")] is models.CASCADE
    assert to_runs[("django_inngest_listener", "run_id")] is models.CASCADE
    assert to_runs[("django_inngest_functionrun", "parent_run_id")] is models.SET_NULL
    to_events = {(r.table, r.column): r.on_delete for r in retention.references(Event)}
    assert to_events[("django_inngest_functionrun", "event_id")] is models.PROTECT


def test_flow_control_rows_follow_their_on_delete() -> None:
    from django_inngest.models import RunEvent, SkippedRun

    # A batched run still running holds every event of its batch, old or not.
    held = event_at(OLD)
    batch = run_at(OLD, status=RunStatus.RUNNING)
    RunEvent.objects.create(run=batch, event=batch.event, position=0)
    RunEvent.objects.create(run=batch, event=held, position=1)
    # An old batched run that ended goes with its list; then its events are free.
    done = run_at(OLD)
    done_second = event_at(OLD)
    RunEvent.objects.create(run=done, event=done.event, position=0)
    RunEvent.objects.create(run=done, event=done_second, position=1)
    # The log of a skipped run goes with its event.
    skipped = event_at(OLD)
    SkippedRun.objects.create(
        event=skipped, function=make_registration(), reason="rate_limited", created_at=OLD
    )
    retention.Pruner().prune(NOW - timedelta(days=30))
    assert exists(held) and exists(batch) and RunEvent.objects.filter(run=batch).count() == 2
    assert not exists(done) and not RunEvent.objects.filter(run_id=done.pk).exists()
    assert not exists(done_second) and not exists(skipped)
    assert not SkippedRun.objects.exists()


# -- the command ----------------------------------------------------------------------------


def prune(*args: str) -> str:
    out = StringIO()
    call_command("inngest_prune", *args, stdout=out)
    return out.getvalue()


def test_command_dry_run_counts_what_is_then_deleted() -> None:
    for _ in range(3):
        run_at(OLD)
    event_at(OLD)
    run_at(RECENT)
    assert "Would delete 3 run(s), 6 step(s) and 4 event(s)" in prune("--dry-run")
    assert FunctionRun.objects.count() == 4
    output = prune("--batch-size", "2")
    assert "Deleted 3 run(s), 6 step(s) and 4 event(s)" in output
    assert FunctionRun.objects.count() == 1
    assert "Deleted 1 run(s)" in prune("--older-than", "12h")
    assert not FunctionRun.objects.exists()


def test_command_needs_a_cutoff(settings: Any) -> None:
    settings.DJANGO_INNGEST_RETENTION = None
    with pytest.raises(CommandError, match="give --older-than"):
        prune()
    with pytest.raises(CommandError, match="--older-than: 'soon' is not a duration"):
        prune("--older-than", "soon")
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        prune("--older-than", "1d", "--batch-size", "0")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 604800),
        ("12h", 43200),
        ("1d12h", 129600),
        ("90m", 5400),
        ("30s", 30),
        ("3600", 3600),
        ("2w", 1209600),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "d7", "7x", "-5", "0", "7d junk"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_command_pauses_between_batches_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("django_inngest.management.commands.inngest_prune.time.sleep", slept.append)
    for n in range(4):
        run_at(OLD - timedelta(minutes=n))
    prune("--batch-size", "2")
    assert slept and all(pause > 0 for pause in slept)  # as long as each batch took
    for n in range(4):
        run_at(OLD - timedelta(minutes=n))
    slept.clear()
    prune("--batch-size", "2", "--pause", "0")
    assert slept == []
    with pytest.raises(CommandError, match="--pause must not be negative"):
        prune("--pause", "-1")
