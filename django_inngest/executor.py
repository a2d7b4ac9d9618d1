"""The only module that talks to django-q2: enqueueing wake-up tasks, and the hooks into
django-q2's worker processes.

django-q2 is transport, not truth. A task carries only run IDs; the run's row says whether it
is ready and free. A lost task (the Redis broker drops in-flight tasks when a worker dies) is
re-dispatched by the poller once ``REDISPATCH_AFTER_SECONDS`` pass; a duplicate task (one that
outlived ``retry``) finds the lease held and returns.

This is the bottom layer: it knows no engine. The engine installs what a task runs
(``install_worker_entry``) and what starts in each worker (``on_worker_start``).
"""

from __future__ import annotations

import logging
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
