"""A process-wide pool of threads, so that one worker process advances several runs at once.

A step's commit waits for the database to flush its write-ahead log; most of a short step's
time is that wait. Advancing a few runs at once overlaps those waits, as Inngest's executor
overlaps its calls to an SDK. Each thread has its own database connection; connections follow
``CONN_MAX_AGE`` exactly as django-q2's own workers do (checked before and after each batch),
and ``shutdown()`` closes them.

The pool is created lazily in the process that uses it, and again after a fork.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.db import close_old_connections, connections

from django_inngest import database
from django_inngest.conf import settings

T = TypeVar("T")
_Job = Callable[[], None]


def threads_for(count: int) -> int:
    """How many threads should share ``count`` runs here; 1 means inline, in this thread.

    Inline when the caller is inside a transaction (other connections could not see its
    uncommitted rows: sync mode in a test) and on SQLite, whose writers are serialised anyway.
    """
    wanted = settings.THREADS_PER_WORKER
    connection = database.connection()
    if count <= 1 or wanted <= 1 or connection.in_atomic_block or connection.vendor == "sqlite":
        return 1
    return min(count, wanted)


class _Pool:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def grow(self, size: int) -> None:
        while len(self.threads) < size:
            thread = threading.Thread(
                target=self._loop, name=f"inngest-run-{len(self.threads)}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:  # shutdown: one sentinel per thread
                connections.close_all()
                return
            job()

    def shutdown(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()
        self.threads = []


_lock = threading.Lock()
_pool: _Pool | None = None


def _pool_of(size: int) -> _Pool:
    global _pool
    with _lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = _Pool()  # a fork copies the object, not its threads
        _pool.grow(size)
        return _pool


def run_each(items: Iterable[T], work: Callable[[T], None], threads: int) -> None:
    """Call ``work`` on every item, on up to ``threads`` pool threads; returns when all are
    done. ``work`` should not raise; an error that escapes is re-raised here afterwards."""
    pending = iter(list(items))
    take = threading.Lock()
    finished = threading.Semaphore(0)
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            close_old_connections()
            while True:
                with take:
                    item = next(pending, None)
                if item is None:
                    return
                work(item)
        except BaseException as exc:
            errors.append(exc)
        finally:
            try:
                close_old_connections()
            finally:
                finished.release()

    pool = _pool_of(threads)
    for _ in range(threads):
        pool.jobs.put(drain)
    for _ in range(threads):
        finished.acquire()
    if errors:
        raise errors[0]


def shutdown() -> None:
    """Stop the pool's threads and close their connections (tests; a process exiting)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None and pool.pid == os.getpid():
        pool.shutdown()
