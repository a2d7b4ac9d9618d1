"""A worker process's graceful stop: its runs go back to other workers at once, not a lease later.

SIGTERM reaches a worker from its sentinel (``manage.py inngest_worker`` stopping), from a
service manager that signals every process of the cluster, or from django-q2 itself when a task
outlives its ``timeout``. From then on the process starts nothing (``stopping``): a task hands
its runs back unclaimed, a run between two steps is paused, ready at once, and dispatched again
(``Invocation.before_step``), and runs claimed but not started are released. Steps in flight get
``STOP_GRACE_SECONDS`` to finish; the runs still held after that are released and dispatched too,
and their steps run again on another worker (steps are at-least-once; a late result here is
dropped by the lease check of its commit).

Then the process exits, unless it belongs to a cluster that ``inngest_worker`` is stopping and
has nothing left in flight: it then takes django-q2's end-of-work message like any worker, handing
back the runs of tasks still queued in memory on the way.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

from django.db import connections
from django.utils import timezone

from django_inngest import database, executor
from django_inngest.conf import settings
from django_inngest.engine import gates
from django_inngest.engine.leases import lease_keeper
from django_inngest.models import FunctionRun, WaitKind

logger = logging.getLogger(__name__)
_stop_requested = threading.Event()
#: How often the stop thread looks whether the runs in flight are done.
_CHECK_SECONDS = 0.02
#: How long an idle worker waits to learn whether its cluster is stopping (the main process
#: marks it as it gets the signal, so this is only the race of a signal sent to all at once).
_CLUSTER_STOP_SECONDS = 1.0


def stopping() -> bool:
    """This worker is stopping: start no run and no step."""
    return _stop_requested.is_set()


def install() -> None:
    """In a django-q2 worker process as it starts: SIGTERM begins a graceful stop."""
    signal.signal(signal.SIGTERM, _request_stop)
    threading.Thread(target=_stop_when_requested, name="inngest-stop", daemon=True).start()


def _request_stop(signum: int, frame: FrameType | None) -> None:
    # A signal handler runs between two bytecodes of the main thread, which may hold any lock:
    # it only sets a flag that the stop thread and the engine read.
    _stop_requested.set()


def hand_back(held: list[tuple[str, str]]) -> list[str]:
    """Release the leases ``held`` (run ID, owner) that are still ours, make their runs ready
    now and dispatch them; returns the runs handed back."""
    now = timezone.now()
    released = [
        run_id
        for run_id, owner in held
        if FunctionRun.objects.pause(
            run_id, owner, ready_at=now, wait_kind=WaitKind.NONE, dispatched_at=now
        )
    ]
    if released:
        executor.dispatch(released)
        with database.atomic():  # their concurrency slots are free: wake who waits for them
            gates.release(list(FunctionRun.objects.filter(pk__in=released, gated=True)))
    return released


def _stop_when_requested() -> None:
    _stop_requested.wait()
    started = time.monotonic()
    grace = settings.STOP_GRACE_SECONDS
    logger.info("Worker pid=%s stopping: handing its runs back (grace %ss)", os.getpid(), grace)
    while lease_keeper.held() and time.monotonic() - started < grace:
        time.sleep(_CHECK_SECONDS)
    still_held = lease_keeper.held()
    if still_held:
        try:
            released = hand_back(still_held)
            logger.warning(
                "Worker pid=%s stopped with steps in flight: handed back run_ids=%s",
                os.getpid(),
                released,
            )
        except Exception:
            logger.exception("Could not hand back runs; they recover when their leases expire")
        finally:
            connections.close_all()
    if still_held or not _cluster_stopping_soon():
        # A step still runs in the main thread (its result would be dropped), or no sentinel
        # will send this process its end-of-work message: leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _cluster_stopping_soon() -> bool:
    deadline = time.monotonic() + _CLUSTER_STOP_SECONDS
    while not executor.cluster_is_stopping():
        if time.monotonic() > deadline:
            return False
        time.sleep(_CHECK_SECONDS)
    return True
