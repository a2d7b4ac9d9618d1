"""A real race for a run's lease: several threads, each on its own database connection, claim
the same run at the same instant. Exactly one wins, on PostgreSQL (row locks, ``skip_locked``)
and on SQLite (IMMEDIATE transactions serialised by the busy timeout)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from django.db import connection
from django.utils import timezone

from django_inngest import Event
from django_inngest.models import FunctionRun, RunStatus, WaitKind
from tests.helpers import claim_again, claim_new
from tests.testapp.inngest_functions import inngest_client

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 6
ROUNDS = 5

T = TypeVar("T")


def queued_runs(count: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``count`` Queued runs that no task was enqueued for: nobody claims them but the test."""
    with monkeypatch.context() as patched:
        patched.setattr("django_inngest.executor.dispatch", lambda run_ids: None)
        ids = inngest_client.send_sync(
            [Event(name="testapp/hello", data={"i": i}) for i in range(count)]
        )
    run_ids = list(
        FunctionRun.objects.filter(event_id__in=ids, status=RunStatus.QUEUED).values_list(
            "run_id", flat=True
        )
    )
    assert len(run_ids) == count
    return run_ids


def race(claim: Callable[[str], T]) -> dict[str, T]:
    """Call ``claim(owner)`` on ``THREADS`` threads released together by a barrier; each
    thread has its own connection. Returns each owner's result; re-raises any thread's error."""
    barrier = threading.Barrier(THREADS)
    results: dict[str, T] = {}
    errors: list[BaseException] = []

    def contender(owner: str) -> None:
        try:
            connection.ensure_connection()  # connect before the barrier: race the claim only
            barrier.wait(timeout=30)
            results[owner] = claim(owner)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [
        threading.Thread(target=contender, args=(f"worker-{i}",), name=f"contender-{i}")
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a contender hung"
    if errors:
        raise errors[0]
    assert len(results) == THREADS
    return results


def test_claim_again_of_a_crashed_workers_run_goes_to_exactly_one_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for round_, run_id in enumerate(queued_runs(ROUNDS, monkeypatch)):
        now = timezone.now()
        # The state a worker killed mid-run leaves behind: Running, its lease expired.
        FunctionRun.objects.filter(pk=run_id).update(
            status=RunStatus.RUNNING,
            wait_kind=WaitKind.NONE,
            lease_owner="dead-worker",
            lease_expires_at=now - timedelta(seconds=1),
            started_at=now - timedelta(seconds=10),
        )

        results = race(functools.partial(claim_again, run_id))

        winners = {owner: claim for owner, claim in results.items() if claim is not None}
        assert len(winners) == 1, (round_, results)
        ((owner, claim),) = winners.items()
        assert claim.recovered is True
        assert claim.first is False
        assert claim.run.pk == run_id and claim.run.lease_owner == owner
        run = FunctionRun.objects.get(pk=run_id)
        assert run.lease_owner == owner
        assert run.status == RunStatus.RUNNING
        assert run.lease_expires_at is not None and run.lease_expires_at > now
        assert run.started_at == now - timedelta(seconds=10)  # kept: it is the same run


def test_claim_new_of_a_queued_run_goes_to_exactly_one_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for round_, run_id in enumerate(queued_runs(ROUNDS, monkeypatch)):
        results = race(functools.partial(claim_new, [run_id]))

        winners = {owner: claimed for owner, claimed in results.items() if claimed}
        assert len(winners) == 1, (round_, results)
        ((owner, claimed),) = winners.items()
        assert list(claimed) == [run_id]
        claim = claimed[run_id]
        assert (claim.recovered, claim.first) == (False, True)
        assert claim.run.pk == run_id and claim.run.lease_owner == owner
        run = FunctionRun.objects.get(pk=run_id)
        assert run.lease_owner == owner
        assert run.status == RunStatus.RUNNING
        assert run.started_at is not None
