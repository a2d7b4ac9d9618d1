"""Retention: deleting runs that ended long ago, with their steps, and the events nothing needs.

``DJANGO_INNGEST_RETENTION`` (default 30 days; ``None`` keeps everything) is applied a little at
a time by the workers' housekeeping (``maintenance.periodic_maintenance``), and all at once by
``manage.py inngest_prune``. Both delete in small batches, each its own short transaction, so
that a backlog of a million old runs never holds locks for long or stalls the workers and the
event API:

* runs: the oldest ended runs first, found through the ``ended_at`` index, ``BATCH_RUNS`` at a
  time (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two pruners never queue on each other). In
  the same transaction the rows that point at them follow their ``on_delete``: steps and
  listeners are deleted, invoked children forget their parent. A cancelled run whose
  ``function_cancelled`` signal has not been delivered yet (the outbox) is kept until it is.
* events: walked in primary-key order (ULIDs, so the key range below the cutoff's ULID is
  exactly the old events), ``BATCH_EVENTS`` at a time, deleting those that no run, wait or
  batch still points at (the DELETE checks it again).

Every table with a foreign key to events or runs is found from the models, so tables that
other parts of the app add later are respected without changes here. A row pointing at a run
or an event follows its ``on_delete``: deleted with it (``CASCADE``: steps, listeners, a batch's
list of events, the log of skipped runs), unlinked from it (``SET_NULL``: invoked children), or
else it keeps it (``PROTECT``: the runs an event started, the events a batch holds).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, models

from django_inngest import database, sql
from django_inngest.conf import settings
from django_inngest.ids import seeded_ulid
from django_inngest.models import TERMINAL_STATUSES, Event, FunctionRun, RunStatus, StepRun

logger = logging.getLogger(__name__)

#: Runs deleted per transaction (each with its steps: a few thousand rows in all).
BATCH_RUNS = 500
#: Events examined per transaction.
BATCH_EVENTS = 1000
#: One housekeeping pass prunes for at most this long, so that the poller that runs it keeps
#: dispatching timers on time; a backlog is worked off over many passes.
PASS_BUDGET_SECONDS = 0.25
#: PostgreSQL advisory lock: one pruner at a time across all the worker processes.
ADVISORY_LOCK_KEY = 0x1D_6E_57_01


@dataclass
class Pruned:
    runs: int = 0
    steps: int = 0
    events: int = 0
    #: Rows of other tables deleted or unlinked with the runs (listeners, invoked children...).
    related: int = 0

    def add(self, other: Pruned) -> None:
        self.runs += other.runs
        self.steps += other.steps
        self.events += other.events
        self.related += other.related

    def __bool__(self) -> bool:
        return bool(self.runs or self.events)


def retention_cutoff(now: datetime, older_than: timedelta | None = None) -> datetime | None:
    """Runs that ended, and events received, before this are pruned; None: keep everything."""
    keep = older_than if older_than is not None else settings.RETENTION
    return None if keep is None else now - keep


# -- who points at runs and events -------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    table: str
    column: str
    on_delete: Any


def references(model: type[models.Model]) -> list[Reference]:
    """Every concrete foreign key pointing at ``model`` (including its own, e.g. a run's
    parent), read from the installed models."""
    found: list[Reference] = []
    for relation in model._meta.related_objects:
        field = relation.field
        if relation.many_to_many or not getattr(field, "concrete", False) or not field.column:
            continue
        found.append(
            Reference(relation.related_model._meta.db_table, field.column, relation.on_delete)
        )
    return found


def _quote(name: str) -> str:
    return sql.quote(database.connection(), name)


def _not_referenced(refs: list[Reference], table: str, key: str) -> str:
    return "".join(
        f" AND NOT EXISTS (SELECT 1 FROM {_quote(r.table)} ref WHERE ref.{_quote(r.column)} "
        f"= {table}.{_quote(key)})"
        for r in refs
    )


# -- runs -----------------------------------------------------------------------------------


_FOLLOWED = (models.CASCADE, models.SET_NULL)


def _prunable_runs(cutoff: datetime) -> tuple[str, list[Any]]:
    """``SELECT run_id FROM runs WHERE <prunable>`` and its parameters: ended before the
    cutoff, its cancel signal delivered, and no row that keeps it pointing at it."""
    runs = _quote(FunctionRun._meta.db_table)
    keeping = [r for r in references(FunctionRun) if r.on_delete not in _FOLLOWED]
    statuses = ", ".join(["%s"] * len(TERMINAL_STATUSES))
    statement = (
        f"SELECT {runs}.{_quote('run_id')} FROM {runs} "
        f"WHERE {runs}.{_quote('ended_at')} < %s AND {runs}.{_quote('status')} IN ({statuses}) "
        # The cancel-signal outbox: not before function_cancelled has been delivered.
        f"AND NOT ({runs}.{_quote('status')} = %s "
        f"AND {runs}.{_quote('cancelled_signal_sent')} = %s)"
        f"{_not_referenced(keeping, runs, 'run_id')}"
    )
    params: list[Any] = [cutoff, *map(str, TERMINAL_STATUSES), str(RunStatus.CANCELLED), False]
    return statement, params


def prune_runs_batch(cutoff: datetime, limit: int = BATCH_RUNS) -> Pruned:
    """Delete up to ``limit`` runs that ended before ``cutoff``, with what points at them, in
    one transaction."""
    connection = database.connection()
    select, params = _prunable_runs(cutoff)
    # Oldest first, through the ended_at index; SKIP LOCKED: two pruners never queue.
    select += f" ORDER BY {_quote('ended_at')} LIMIT %s"
    if connection.vendor == "postgresql":
        select += " FOR UPDATE SKIP LOCKED"
    pruned = Pruned()
    with database.atomic(), connection.cursor() as cursor:
        cursor.execute(select, [*params, limit])
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return pruned
        marks = ", ".join(["%s"] * len(ids))
        touched = _follow(cursor, references(FunctionRun), ids, marks)
        pruned.steps = touched.pop(StepRun._meta.db_table, 0)
        touched.pop(FunctionRun._meta.db_table, None)  # invoked children, unlinked
        pruned.related = sum(touched.values())
        runs = _quote(FunctionRun._meta.db_table)
        cursor.execute(f"DELETE FROM {runs} WHERE {_quote('run_id')} IN ({marks})", ids)
        pruned.runs = cursor.rowcount
    return pruned


# -- events ---------------------------------------------------------------------------------


def _events_sql() -> tuple[str, str, str]:
    events = _quote(Event._meta.db_table)
    key = _quote("internal_id")
    keeping = [r for r in references(Event) if r.on_delete not in _FOLLOWED]
    scan = (
        f"SELECT {key} FROM {events} WHERE {key} > %s AND {key} < %s "
        f"AND {_quote('received_at')} < %s ORDER BY {key} LIMIT %s"
    )
    free = f"SELECT {key} FROM {events} WHERE {key} IN ({{marks}})" + _not_referenced(
        keeping, events, "internal_id"
    )
    # The check again in the DELETE itself: a reference added since costs nothing but a skip.
    delete = f"DELETE FROM {events} WHERE {key} IN ({{marks}})" + _not_referenced(
        keeping, events, "internal_id"
    )
    return scan, free, delete


def prune_events_batch(
    cutoff: datetime, after: str = "", limit: int | None = None
) -> tuple[int, str | None]:
    """Examine up to ``limit`` events received before ``cutoff`` whose ID is after ``after``,
    and delete those nothing keeps (rows that only log something about an event, ``CASCADE``,
    go with it). Returns (deleted, where to continue; None at the end)."""
    limit = limit or BATCH_EVENTS
    # Below this ULID every key was minted before the cutoff: a primary-key range scan.
    bound = seeded_ulid(int(cutoff.timestamp() * 1000), 0)
    scan, free, delete = _events_sql()
    connection = database.connection()
    try:
        with database.atomic(), connection.cursor() as cursor:
            cursor.execute(scan, [after, bound, cutoff, limit])
            scanned = [row[0] for row in cursor.fetchall()]
            if not scanned:
                return 0, None
            cursor.execute(free.format(marks=", ".join(["%s"] * len(scanned))), scanned)
            ids = [row[0] for row in cursor.fetchall()]
            deleted = 0
            if ids:
                marks = ", ".join(["%s"] * len(ids))
                _follow(cursor, references(Event), ids, marks)
                cursor.execute(delete.format(marks=marks), ids)
                deleted = cursor.rowcount
    except IntegrityError:
        # A run was created for one of them (a rerun) between our check and our delete: leave
        # this batch for the next pass, which will see the run.
        logger.info("Event pruning raced a new reference; retrying later")
        return 0, after
    return deleted, (scanned[-1] if len(scanned) == limit else None)


def _follow(cursor: Any, refs: list[Reference], ids: list[str], marks: str) -> dict[str, int]:
    """Apply each reference's ``on_delete`` to the rows pointing at ``ids``: delete them
    (``CASCADE``) or unlink them (``SET_NULL``). Returns the rows touched per table."""
    touched: dict[str, int] = {}
    for ref in refs:
        if ref.on_delete is models.SET_NULL:
            statement = f"UPDATE {_quote(ref.table)} SET {_quote(ref.column)} = NULL"
        elif ref.on_delete is models.CASCADE:
            statement = f"DELETE FROM {_quote(ref.table)}"
        else:
            continue  # such rows keep what they point at: the caller left those out
        cursor.execute(f"{statement} WHERE {_quote(ref.column)} IN ({marks})", ids)
        touched[ref.table] = touched.get(ref.table, 0) + max(cursor.rowcount, 0)
    return touched


# -- passes ---------------------------------------------------------------------------------


def _lock(*, wait: bool) -> bool:
    """Take the pruning lock for the current transaction (PostgreSQL: one pruner at a time,
    whichever process); other databases serialise their writers anyway."""
    connection = database.connection()
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


class Pruner:
    """Prunes across calls: remembers where the walk over old events stopped.

    ``wait``: queue for the pruning lock (the command) rather than skip the pass when another
    process holds it (the workers)."""

    def __init__(self, *, wait: bool = False) -> None:
        self.events_after = ""
        self.wait = wait

    def prune(
        self,
        cutoff: datetime,
        *,
        budget_seconds: float | None = None,
        runs_batch: int | None = None,
        events_batch: int | None = None,
    ) -> Pruned:
        """Runs first (their events become free), then events. Each batch is one transaction;
        after each, it stops if ``budget_seconds`` have passed (so at least one batch runs),
        and when nothing is left. Returns what was deleted."""
        deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        runs_batch = runs_batch or BATCH_RUNS
        events_batch = events_batch or BATCH_EVENTS
        total = Pruned()

        def over() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        while True:
            with database.atomic():
                if not _lock(wait=self.wait):
                    return total  # another process is pruning
                batch = prune_runs_batch(cutoff, runs_batch)
            total.add(batch)
            if batch.runs < runs_batch:
                break
            if over():
                return total
        while True:
            with database.atomic():
                if not _lock(wait=self.wait):
                    return total
                deleted, after = prune_events_batch(cutoff, self.events_after, events_batch)
            total.events += deleted
            self.events_after = after or ""
            if after is None or over():
                return total


#: The workers' pruner (one per process: the poller thread's).
pruner = Pruner()


def prune_some(now: datetime) -> Pruned:
    """One housekeeping pass: a bounded slice of the backlog, if retention is on."""
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return Pruned()
    pruned = pruner.prune(cutoff, budget_seconds=PASS_BUDGET_SECONDS)
    if pruned:
        logger.info(
            "Pruned %d runs (%d steps) and %d events older than %s",
            pruned.runs,
            pruned.steps,
            pruned.events,
            cutoff.isoformat(),
        )
    return pruned


def count_prunable(cutoff: datetime) -> Pruned:
    """What pruning at ``cutoff`` would delete now (``inngest_prune --dry-run``)."""
    connection = database.connection()
    runs, steps, events = (
        _quote(FunctionRun._meta.db_table),
        _quote(StepRun._meta.db_table),
        _quote(Event._meta.db_table),
    )
    prunable, params = _prunable_runs(cutoff)
    counted = Pruned()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({prunable}) doomed", params)
        counted.runs = int(cursor.fetchone()[0])
        cursor.execute(
            f"SELECT COUNT(*) FROM {steps} WHERE {_quote('run_id')} IN ({prunable})", params
        )
        counted.steps = int(cursor.fetchone()[0])
        # An event whose runs would all be pruned is free too.
        others = [
            r
            for r in references(Event)
            if r.table != FunctionRun._meta.db_table and r.on_delete not in _FOLLOWED
        ]
        cursor.execute(
            f"SELECT COUNT(*) FROM {events} WHERE {_quote('received_at')} < %s "
            f"AND NOT EXISTS (SELECT 1 FROM {runs} kept WHERE kept.{_quote('event_id')} = "
            f"{events}.{_quote('internal_id')} AND kept.{_quote('run_id')} NOT IN ({prunable}))"
            f"{_not_referenced(others, events, 'internal_id')}",
            [cutoff, *params],
        )
        counted.events = int(cursor.fetchone()[0])
    return counted
