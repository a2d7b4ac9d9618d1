"""Keeping a run's lease while this worker holds it.

At most one worker advances a run: it holds the run's lease (``FunctionRun.objects.claim_new``
and ``claim_again``). A turn or a step that ran longer than the lease would let another worker
presume this one dead, so one keeper thread per process extends the leases of the runs it holds
(each turn is watched, and each step within it). The lease can therefore be short: only a
worker that died (or froze) stops renewing, and its runs are recovered a lease later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import close_old_connections, connections
from django.utils import timezone

from django_inngest import database
from django_inngest.conf import settings
from django_inngest.models import FunctionRun

logger = logging.getLogger(__name__)


class Watch:
    """One step in flight, watched by the process's ``LeaseKeeper``."""

    def __init__(self, run_id: str, owner: str, on_long: Callable[[], None] | None) -> None:
        self.run_id, self.owner, self.on_long = run_id, owner, on_long
        self.touched = time.monotonic()
        self.closed = False
        #: Held while the keeper writes for this step, so the step's own commit never races it.
        self.lock = threading.Lock()


class LeaseKeeper:
    """One thread per process that keeps the leases of the steps this process is running.

    A step shorter than a third of the lease costs nothing: no thread start, no query. Past
    that, the keeper extends the run's lease every third of a lease and, once, calls the
    step's ``on_long`` (which records the attempt as Running, so that a worker killed inside a
    long step is attributed to that step).
    """

    def __init__(self) -> None:
        self._watches: set[Watch] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(
        self, run_id: str, owner: str, on_long: Callable[[], None] | None = None
    ) -> Iterator[Watch]:
        entry = Watch(run_id, owner, on_long)
        with self._guard:
            self._watches.add(entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="inngest-lease", daemon=True
                )
                self._thread.start()
        try:
            yield entry
        finally:
            with entry.lock:  # wait out a keeper write in progress for this step
                entry.closed = True
            with self._guard:
                self._watches.discard(entry)

    def held(self) -> list[tuple[str, str]]:
        """The leases (run ID, owner) this process holds now: what a stopping worker hands back."""
        with self._guard:
            return sorted({(w.run_id, w.owner) for w in self._watches if not w.closed})

    def _loop(self) -> None:
        connected = False
        while True:
            lease = settings.LEASE_SECONDS
            # Short naps: cheap (no query unless a step is due) and quick to notice new steps.
            time.sleep(min(1.0, max(0.05, lease / 6)))
            with self._guard:
                idle = not self._watches
                due = [w for w in self._watches if time.monotonic() - w.touched >= lease / 3]
            if idle and connected:
                connections[database.alias()].close()  # no long step left: hold none idle
                connected = False
            if not due:
                continue
            try:
                close_old_connections()
                connected = True
                for entry in due:
                    self._touch(entry, lease)
            except Exception:
                logger.exception("Lease keeper error; retrying")

    @staticmethod
    def _touch(entry: Watch, lease: float) -> None:
        with entry.lock:
            if entry.closed:
                return
            entry.touched = time.monotonic()
            extended = FunctionRun.objects.extend_lease(
                entry.run_id, entry.owner, timezone.now() + timedelta(seconds=lease)
            )
            # Lease taken over (we were presumed dead): write nothing more. The step's own
            # commit checks ownership too, so its result will be dropped.
            if extended and entry.on_long is not None:
                on_long, entry.on_long = entry.on_long, None
                on_long()


lease_keeper = LeaseKeeper()
