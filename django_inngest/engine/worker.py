"""What a django-q2 worker task does: advance a batch of runs.

``execute_runs`` is the task (``executor.TASK``). The runs never claimed before are claimed
together up front (the usual case: a batch of events started them) and their leases kept while
they wait their turn. Up to ``THREADS_PER_WORKER`` runs advance at once (``worker_pool``);
completed runs are ended in batches (``completions``). One run's unexpected error does not stop
the others.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import timedelta

from django.utils import timezone

from django_inngest import database, executor
from django_inngest.conf import settings
from django_inngest.engine import gates
from django_inngest.engine.completions import Completions
from django_inngest.engine.leases import lease_keeper
from django_inngest.engine.run_handler import take_turn
from django_inngest.engine.worker_pool import run_each, threads_for
from django_inngest.models import Claim, FunctionRun

logger = logging.getLogger(__name__)


def execute_runs(run_ids: list[str] | str) -> dict[str, str]:
    """The django-q2 task. Never raises: every outcome is recorded in our own tables.

    A single ID is accepted too: tasks enqueued by earlier versions carry one.
    """
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    try:
        return advance_many(ids)
    except Exception:
        logger.exception("Unexpected error advancing run_ids=%s; they will be retried", ids)
        return dict.fromkeys(ids, "error")


def advance(run_id: str) -> str:
    """Advance a run as far as it can go now. Returns what happened, for logs and tests."""
    return advance_many([run_id])[run_id]


def advance_many(run_ids: Sequence[str]) -> dict[str, str]:
    """Advance several runs in this worker; returns each one's outcome.

    A task starts no new run once it has used ``INVOCATION_BUDGET_SECONDS`` (but always starts
    one): the runs not started are handed back (``deferred``) and dispatched again, so that a
    batch of long runs never outlives django-q2's task ``timeout``.
    """
    owner = uuid.uuid4().hex
    ids = list(dict.fromkeys(run_ids))
    deadline = time.monotonic() + settings.INVOCATION_BUDGET_SECONDS
    lease = timedelta(seconds=settings.LEASE_SECONDS)
    outcomes: dict[str, str] = {}
    completions = Completions(late_flush=len(ids) > 1)
    new = _claim_new(ids, owner, lease)
    any_started = threading.Event()

    def advance_one(run_id: str) -> None:
        # Past the budget, start nothing new; but every task starts at least one run.
        if time.monotonic() > deadline and any_started.is_set():
            outcomes[run_id] = "deferred"
            return
        any_started.set()
        try:
            claimed = new.get(run_id) or FunctionRun.objects.claim_again(
                run_id, owner, timezone.now(), lease, admit=gates.admit
            )
            outcomes[run_id] = (
                "skipped" if claimed is None else take_turn(claimed, owner, completions)
            )
        except Exception:
            logger.exception("Unexpected error advancing run_id=%s; it will be retried", run_id)
            outcomes[run_id] = "error"
        if completions.due():
            completions.flush()

    with ExitStack() as held:
        for run_id in new:
            held.enter_context(lease_keeper.watch(run_id, owner))
        try:
            threads = threads_for(len(ids))
            if threads == 1:
                for run_id in ids:
                    advance_one(run_id)
            else:
                run_each(ids, advance_one, threads)
        finally:
            completions.close()
            deferred = [run_id for run_id, outcome in outcomes.items() if outcome == "deferred"]
            if deferred:
                _hand_back(deferred, owner)
    outcomes.update(completions.outcomes)
    return outcomes


def _claim_new(ids: list[str], owner: str, lease: timedelta) -> dict[str, Claim]:
    """The batch's never-claimed runs: plain ones with one UPDATE and one SELECT, gated ones
    admitted together through their limits (``gates.admit_new``)."""
    now = timezone.now()
    claims: dict[str, Claim] = {}
    if FunctionRun.objects.claim_new(ids, owner, now, lease):
        claimed = FunctionRun.objects.loaded().filter(pk__in=ids, lease_owner=owner)
        claims = {run.run_id: Claim(run, recovered=False, first=True) for run in claimed}
    rest = [run_id for run_id in ids if run_id not in claims]
    if rest:
        claims.update(gates.admit_new(rest, owner, now, lease))
    return claims


def _hand_back(run_ids: list[str], owner: str) -> None:
    """Runs claimed but not started go back to Queued and are dispatched again at once (a run
    this task did not claim is simply dispatched again: its claim decides, as always)."""
    with database.atomic():
        FunctionRun.objects.release_unstarted(run_ids, owner, timezone.now())
        executor.dispatch_on_commit(run_ids)
