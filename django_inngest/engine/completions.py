"""Completed runs are ended in batches: one transaction writes many runs' ends.

A run whose handler returned is complete in substance: its steps are committed, and the output
is what a replay would return again. Writing its end can wait a few milliseconds for the
worker's next runs, so that one transaction (one WAL flush, one insert of the
``inngest/function.finished`` events, one listener lookup) ends them all.

Each run keeps its lease until its end is written, and the write is conditional on that lease:
a cancel that lands in between wins, and the completion is dropped, exactly as when the cancel
lands during a step. A worker that dies before the write leaves runs with expired leases; they
are recovered like any other, replay their memoized steps and complete again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections
from django.utils import timezone

from django_inngest import database
from django_inngest.engine.lifecycle import after_runs_ended
from django_inngest.models import Completion, FunctionRun, RunStatus, ended_values

logger = logging.getLogger(__name__)

#: Write the pending ends once this many runs are waiting ...
MAX_PENDING = 50
#: ... or once the oldest has waited this long (checked between runs) ...
MAX_WAIT_SECONDS = 0.05
#: ... and, should the worker be busy in a long run, from a timer thread after this long.
LATE_FLUSH_SECONDS = 0.1


@dataclass
class _Completed:
    run: FunctionRun
    owner: str
    output: Any
    ended_at: datetime
    has_listeners: bool


class Completions:
    """The completed runs of one worker task whose end is not written yet.

    The task's threads add to it and flush it between runs; a timer flushes what a long run
    would otherwise hold back. ``outcomes`` collects what each flush found.
    """

    def __init__(self, *, late_flush: bool = True) -> None:
        self._late_flush = late_flush  # pointless when no other run follows
        self._pending: list[_Completed] = []
        self._since = 0.0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._timers: list[threading.Timer] = []
        self.outcomes: dict[str, str] = {}

    def add(self, run: FunctionRun, owner: str, output: Any, *, has_listeners: bool) -> None:
        with self._lock:
            if not self._pending:
                self._since = time.monotonic()
                # Not inside a transaction: another connection could not see its rows.
                if self._late_flush and not database.in_transaction():
                    self._timer = threading.Timer(LATE_FLUSH_SECONDS, self._flush_late)
                    self._timer.daemon = True
                    self._timers.append(self._timer)
                    self._timer.start()
            self._pending.append(_Completed(run, owner, output, timezone.now(), has_listeners))

    def due(self) -> bool:
        return bool(self._pending) and (
            len(self._pending) >= MAX_PENDING or time.monotonic() - self._since >= MAX_WAIT_SECONDS
        )

    def flush(self) -> None:
        """Write every pending end. ``outcomes`` then says ``completed``, or ``abandoned`` for
        a run cancelled (or taken over) since its handler returned."""
        with self._lock:
            pending, self._pending = self._pending, []
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if not pending:
            return
        try:
            self._write(pending)
            return
        except Exception:
            logger.exception("Could not end run_ids=%s", [d.run.run_id for d in pending])
        if len(pending) == 1:
            self.outcomes[pending[0].run.run_id] = "error"
            return
        # One bad run must not keep the others from ending: try them one by one. A run that
        # still fails keeps its lease until it expires; it is then recovered, replayed and
        # ended again.
        for done in pending:
            try:
                self._write([done])
            except Exception:
                logger.exception("Could not end run_id=%s", done.run.run_id)
                self.outcomes[done.run.run_id] = "error"

    def close(self) -> None:
        """Write what is pending and wait for a timer's write in flight: a task must not
        return (and its worker be recycled) in the middle of one."""
        self.flush()
        for timer in self._timers:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join()
        self._timers = []

    def _flush_late(self) -> None:
        try:
            self.flush()
        finally:
            connections.close_all()  # this timer thread's own connections, if it opened any

    def _write(self, pending: list[_Completed]) -> None:
        with database.atomic():
            # The lease check and the write are one statement: under the row locks, so a
            # concurrent cancel either committed first (its run is not written) or waits.
            written = FunctionRun.objects.end_completed(
                [Completion(d.run.run_id, d.owner, d.ended_at, d.output) for d in pending],
                timezone.now(),
            )
            ended = [d for d in pending if d.run.run_id in written]
            for done in ended:
                values = ended_values(RunStatus.COMPLETED, done.ended_at, output=done.output)
                for name, value in values.items():
                    setattr(done.run, name, value)
            after_runs_ended(
                [d.run for d in ended],
                with_listeners=[d.run.run_id for d in ended if d.has_listeners],
            )
        for done in pending:
            self.outcomes[done.run.run_id] = (
                "completed" if done.run.run_id in written else "abandoned"
            )
