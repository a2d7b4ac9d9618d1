"""The only module that talks to django-q2: enqueueing wake-up tasks, and the hooks into
django-q2's worker processes.

django-q2 is transport, not truth. A task carries only run IDs; the run's row says whether it
is ready and free. A lost task (the Redis broker drops in-flight tasks when a worker dies) is
re-dispatched by the poller once ``REDISPATCH_AFTER_SECONDS`` pass; a duplicate task (one that
outlived ``retry``) finds the lease held and returns.

This is the bottom layer: it knows no engine. The engine installs what a task runs
(``install_worker_entry``) and what starts in each worker (``on_worker_start``). ``run_cluster``
is ``manage.py inngest_worker``: django-q2's cluster, stopped gracefully whichever of its
processes the stop signal reaches.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from typing import Any

from django_q.brokers import Broker, get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.signals import post_spawn
from django_q.tasks import async_task

from django_inngest import database
from django_inngest.conf import settings

logger = logging.getLogger(__name__)
#: What a wake-up task calls (``engine.worker.execute_runs``).
TASK = "django_inngest.engine.worker.execute_runs"

_brokers: dict[str | None, Broker] = {}
_worker_entry: Callable[[list[str] | str], dict[str, str]] | None = None
_on_worker_start: list[Callable[[], None]] = []


def _broker() -> Broker:
    # Building a broker per enqueue costs a new Redis connection each time; keep one per process.
    cluster = settings.Q_CLUSTER_NAME
    if cluster not in _brokers:
        _brokers[cluster] = get_broker(cluster) if cluster else get_broker()
    return _brokers[cluster]


def dispatch(run_ids: Iterable[str]) -> None:
    """Enqueue wake-up tasks for runs, several runs per task. Failure to enqueue is logged,
    never raised: the poller finds the runs again from their rows.

    Runs dispatched together (those one transaction started) share tasks of up to
    ``DISPATCH_BATCH_SIZE``, but are spread over at least as many tasks as the cluster has
    workers, so that a batch never waits on one worker while others are idle.
    """
    for chunk in _chunks_of(run_ids):
        try:
            _enqueue(chunk)
        except Exception:
            logger.exception("Could not enqueue run_ids=%s; the poller will retry", chunk)


def dispatch_on_commit(run_ids: list[str]) -> None:
    """Wake workers once the run rows are visible; the poller covers a lost wake-up.

    With django-q2's ORM broker on our database the wake-up is written in this transaction
    (visible at the same commit, lost with nothing: an outbox); otherwise it is enqueued after
    commit.
    """
    if not _dispatch_in_transaction(run_ids):
        database.on_commit(lambda: dispatch(run_ids))


def _dispatch_in_transaction(run_ids: list[str]) -> bool:
    """Enqueue now, in the caller's transaction, if the broker's queue is a table of the same
    database (django-q2's ORM broker): no second commit is paid. Returns False, enqueuing
    nothing, when that is not the case. An enqueue error here fails the caller's transaction,
    as any write in it would."""
    alias = database.alias()
    if Conf.SYNC or not database.in_transaction():
        return False
    if not isinstance(_broker(), ORM) or alias != Conf.ORM:
        return False
    for chunk in _chunks_of(run_ids):
        _enqueue(chunk)
    return True


def _enqueue(chunk: list[str]) -> None:
    options: dict[str, Any] = {"save": False, "task_name": f"inngest runs {chunk[0]}+"}
    if Conf.SYNC:
        options["sync"] = True
    else:
        options["broker"] = _broker()
    if settings.Q_CLUSTER_NAME:
        options["cluster"] = settings.Q_CLUSTER_NAME
    async_task(TASK, chunk, q_options=options)


def _chunks_of(run_ids: Iterable[str]) -> list[list[str]]:
    ids = list(dict.fromkeys(run_ids))
    return _chunks(ids, settings.DISPATCH_BATCH_SIZE, int(Conf.WORKERS or 1))


def _chunks(ids: list[str], size: int, workers: int) -> list[list[str]]:
    """Split into ``max(ceil(n / size), min(n, workers))`` near-equal chunks, order kept."""
    if not ids:
        return []
    count = max(-(-len(ids) // max(1, size)), min(len(ids), max(1, workers)))
    step, extra = divmod(len(ids), count)
    chunks, start = [], 0
    for index in range(count):
        end = start + step + (1 if index < extra else 0)
        chunks.append(ids[start:end])
        start = end
    return chunks


def install_worker_entry(entry: Callable[[list[str] | str], dict[str, str]]) -> None:
    """Set what the tasks of earlier versions, queued under this module's path, run."""
    global _worker_entry
    _worker_entry = entry


def execute_runs(run_ids: list[str] | str) -> dict[str, str]:
    """The task path versions before 0.2 enqueued (``django_inngest.executor.execute_runs``)."""
    if _worker_entry is None:
        raise RuntimeError("django_inngest's worker entry is not installed (app not ready?)")
    return _worker_entry(run_ids)


#: The task name the first versions enqueued.
execute_run = execute_runs


def on_worker_start(callback: Callable[[], None]) -> None:
    """Call ``callback`` in each django-q2 worker process as it starts (not in sync mode)."""
    _on_worker_start.append(callback)


def _worker_started(**_: Any) -> None:
    if Conf.SYNC:
        return
    for callback in _on_worker_start:
        callback()


def connect_worker_signals() -> None:
    post_spawn.connect(_worker_started, dispatch_uid="django_inngest.worker_started")


# -- the cluster of ``manage.py inngest_worker`` ---------------------------------------------------
#: Set, in memory every process of the cluster shares, once a stop of ``run_cluster``'s cluster
#: has begun (None in processes that ``run_cluster`` did not start, e.g. ``manage.py qcluster``).
_stop_begun: Any = None


def cluster_is_stopping() -> bool:
    """Whether this process belongs to a cluster that ``run_cluster`` is stopping: its workers
    then wait for django-q2's end-of-work message instead of exiting on their own."""
    return _stop_begun is not None and bool(_stop_begun.value)


def _begin_stop() -> None:
    if _stop_begun is not None:
        _stop_begun.value = True


def _graceful_cluster() -> Any:
    """django-q2's ``Cluster``, starting a sentinel that stops gracefully. Built on first use:
    importing ``django_q.cluster`` sets Django up if it is not yet, so no module may do it at
    import time."""
    import django_q.cluster
    from django_q.cluster import Cluster, Sentinel

    class _GracefulSentinel(Sentinel):
        """django-q2's sentinel (which forks and guards the workers, the pusher and the monitor),
        except for how it takes SIGTERM.

        django-q2 leaves SIGTERM at its default in the sentinel and its children. A SIGTERM sent to
        every process of the cluster at once (systemd's ``KillMode=control-group``, ``kill -TERM
        -<pgid>``) then kills the sentinel while the main process is telling it to stop; the main
        process waits forever for it to acknowledge. Here the sentinel and the pusher and monitor
        ignore SIGTERM and stop only when the main process says so; workers take SIGTERM as "hand
        your runs back now" (the engine's handler, installed when each worker starts); and the
        sentinel's stop sends that SIGTERM to every worker itself, so that a signal to the main
        process alone stops the workers just as fast.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "start": False})
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the processes it forks
            self.start()

        def stop(self) -> None:
            _begin_stop()
            for process in list(self.pool):
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(process.pid, signal.SIGTERM)
            super().stop()

    class _GracefulCluster(Cluster):
        """django-q2's main process, starting a ``_GracefulSentinel``."""

        def start(self) -> int:
            # Cluster.start forks ``django_q.cluster.Sentinel``; the forked process has already
            # taken our class when the name is put back.
            original, django_q.cluster.Sentinel = django_q.cluster.Sentinel, _GracefulSentinel
            try:
                pid: int = super().start()
            finally:
                django_q.cluster.Sentinel = original
            return pid

        def sig_handler(self, signum: int, frame: Any) -> None:
            _begin_stop()  # before the workers can see their own SIGTERM, if the whole group got one
            super().sig_handler(signum, frame)

    return _GracefulCluster()


def run_cluster() -> int:
    """Run a django-q2 cluster in this process until SIGTERM or SIGINT has stopped it; returns
    the sentinel's exit code (0 after a stop)."""
    global _stop_begun
    _stop_begun = multiprocessing.RawValue(ctypes.c_bool, False)
    cluster = _graceful_cluster()
    cluster.start()
    while cluster.sentinel is not None and cluster.sentinel.is_alive():
        cluster.sentinel.join()
    return int(cluster.sentinel.exitcode or 0) if cluster.sentinel is not None else 0
