"""The only module that talks to django-q2: wake-up tasks, and the timer poller in each worker.

django-q2 is transport, not truth. A task carries only run IDs; the run's row says whether it
is ready and free. A lost task (the Redis broker drops in-flight tasks when a worker dies) is
re-dispatched by the poller once ``REDISPATCH_AFTER_SECONDS`` pass; a duplicate task (one that
outlived ``retry``) finds the lease held and returns. django-q2's ``Schedule`` ticks only every
~30 s, so each worker runs a small poller thread for sleeps, timeouts, retries and lost runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.db import close_old_connections, connections, router
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.signals import post_spawn
from django_q.tasks import async_task

from django_inngest import engine, leases
from django_inngest.conf import settings

logger = logging.getLogger(__name__)
TASK = "django_inngest.executor.execute_runs"

_brokers: dict[str | None, Broker] = {}


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


def dispatch_in_transaction(run_ids: Iterable[str]) -> bool:
    """Enqueue now, in the caller's transaction, if the broker's queue is a table of the same
    database (django-q2's ORM broker): the wake-up then commits or rolls back with the runs it
    wakes, so none is lost between the commit and the enqueue, and no second commit is paid.
    Returns False, enqueuing nothing, when that is not the case (the caller dispatches after
    commit). An enqueue error here fails the caller's transaction, as any write in it would."""
    from django_q.brokers.orm import ORM

    from django_inngest.models import FunctionRun

    alias = router.db_for_write(FunctionRun)
    if Conf.SYNC or not connections[alias].in_atomic_block:
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
    return _chunks(ids, int(settings.DISPATCH_BATCH_SIZE), int(Conf.WORKERS or 1))


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


def execute_runs(run_ids: list[str] | str) -> dict[str, str]:
    """The django-q2 task. Never raises: every outcome is recorded in our own tables.

    A single ID is accepted too: tasks enqueued by earlier versions carry one.
    """
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    try:
        return engine.advance_many(ids)
    except Exception:
        logger.exception("Unexpected error advancing run_ids=%s; they will be retried", ids)
        return dict.fromkeys(ids, "error")


#: The task name earlier versions enqueued.
execute_run = execute_runs


def tick() -> int:
    """One poll: dispatch every run whose time has come (``periodic_maintenance`` redelivers
    cancel signals lost to a crash)."""
    ids = leases.poll_due_runs()
    if ids:
        dispatch(ids)
    return len(ids)


class Poller(threading.Thread):
    """Runs in every worker process (started on django-q2's ``post_spawn``)."""

    def __init__(self) -> None:
        super().__init__(name="django-inngest-poller", daemon=True)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        from django_inngest.maintenance import periodic_maintenance
        from django_inngest.registrations import sync_registrations

        try:
            sync_registrations()
        except Exception:
            logger.exception("Could not sync function registrations at worker start")
        last_maintenance = 0.0
        while not self._stop_event.wait(float(settings.TIMER_POLL_SECONDS)):
            try:
                close_old_connections()
                tick()
                if time.monotonic() - last_maintenance > 5:
                    last_maintenance = time.monotonic()
                    periodic_maintenance()
            except Exception:
                logger.exception("django_inngest poller error; retrying")


_poller: Poller | None = None


def start_poller(**_: Any) -> None:
    global _poller
    if Conf.SYNC or (_poller is not None and _poller.is_alive()):
        return
    _poller = Poller()
    _poller.start()


def connect_worker_signals() -> None:
    post_spawn.connect(start_poller, dispatch_uid="django_inngest.start_poller")
