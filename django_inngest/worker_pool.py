"""A process-wide pool of threads, so that one worker process advances several runs at once.

A step's commit waits for the database to flush its write-ahead log; most of a short step's
time is that wait. Advancing a few runs at once overlaps those waits, as Inngest's executor
overlaps its calls to an SDK. Each thread has its own database connection; connections follow
``CONN_MAX_AGE`` exactly as django-q2's own workers do (checked before and after each batch).

The pool is created lazily in the process that uses it, and recreated after a fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from django.db import close_old_connections, connection

from django_inngest.conf import settings

T = TypeVar("T")

_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None


def threads_for(count: int) -> int:
    """How many threads should share ``count`` runs here; 1 means inline, in this thread.

    Inline when the caller is inside a transaction (other connections could not see its
    uncommitted rows: sync mode in a test) and on SQLite, whose writers are serialised anyway.
    """
    wanted = int(settings.THREADS_PER_WORKER)
    if count <= 1 or wanted <= 1 or connection.in_atomic_block or connection.vendor == "sqlite":
        return 1
    return min(count, wanted)


def _executor(size: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != size:
            # A fork copies the object but not its threads; a new size needs a new pool.
            _pool = (os.getpid(), size, ThreadPoolExecutor(size, "inngest-run"))
        return _pool[2]


def run_each(items: Iterable[T], work: Callable[[T], None], threads: int) -> None:
    """Call ``work`` on every item, on up to ``threads`` pool threads; returns when all are
    done. ``work`` must not raise (an escaping error is re-raised here after the others end)."""
    pending = iter(list(items))
    take = threading.Lock()

    def drain() -> None:
        close_old_connections()
        try:
            while True:
                with take:
                    item = next(pending, None)
                if item is None:
                    return
                work(item)
        finally:
            close_old_connections()

    futures = [_executor(threads).submit(drain) for _ in range(threads)]
    wait(futures)
    for future in futures:
        future.result()
