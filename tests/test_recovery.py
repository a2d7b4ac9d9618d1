"""Crash recovery with the library's own timing (``LEASE_SECONDS`` 10, ``REDISPATCH_AFTER_SECONDS``
10, ``TIMER_POLL_SECONDS`` 0.25), real ``inngest_worker`` clusters and a backlog queued behind the
runs in flight: the README states the bounds these tests measure."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_inngest.models import FunctionRun, RunStatus
from tests.qcluster import QCluster, wait_until
from tests.test_integration_qcluster import _SUFFIX, REDIS_URL, send_batch
from tests.test_worker_stop import marks

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

#: The README's bound: a run whose worker died, or whose wake-up the broker lost, resumes within
#: this many seconds, with the default settings, even behind a backlog.
RECOVERY_BOUND_SECONDS = 20.0


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers.log"
    path.touch()
    return path


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return tmp_path / "release"


@pytest.fixture
def real_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {})


@contextlib.contextmanager
def cluster(markers: Path, release: Path, **env: str) -> Iterator[QCluster]:
    qcluster = QCluster(
        "tests.integration_settings",
        {
            "INNGEST_TEST_MARKERS": str(markers),
            "INNGEST_TEST_RELEASE": str(release),
            "INNGEST_TEST_LIBRARY_TIMING": "1",
            **env,
        },
        command="inngest_worker",
    )
    try:
        qcluster.wait_ready(workers=2)
        yield qcluster
    finally:
        release.touch()
        qcluster.stop()


def backlog_size() -> int:
    """Enough ``testapp/busy`` runs (two 0.25 s steps) to keep two workers busy for about 60 s:
    each advances one run at a time on SQLite, four on PostgreSQL."""
    from django.db import connection

    return 240 if connection.vendor == "sqlite" else 960


def first_mark_after(markers: Path, run_ids: set[str], after: float) -> dict[str, float]:
    """Each run's first step execution after ``after``, in seconds since it."""
    found: dict[str, float] = {}
    for run_id, _, _, at in marks(markers):
        if run_id in run_ids and at > after and run_id not in found:
            found[run_id] = at - after
    return found


def report(what: str, delays: dict[str, float]) -> str:
    values = sorted(delays.values())
    load = os.getloadavg()
    return (
        f"{what}: {len(values)} runs, median {statistics.median(values):.1f} s, "
        f"max {values[-1]:.1f} s (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )


def test_runs_of_a_killed_worker_resume_in_bounded_time_behind_a_backlog(
    markers: Path, release: Path, real_dispatch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with cluster(markers, release) as qcluster:
        # 42 runs in flight, half in each worker: in their hold step, or claimed and waiting.
        in_flight = send_batch("testapp/hold", 42)
        ids = {run.run_id for run in in_flight}
        pids = wait_until(
            lambda: (
                (found := {pid for _, s, pid, _ in marks(markers) if s == "hold"})
                and len(found) == 2
                and found
            ),
            60,
            f"both workers to hold runs:\n{qcluster.output()}",
        )
        # The backlog, queued behind them (every worker is busy).
        backlog = {run.run_id for run in send_batch("testapp/busy", backlog_size(), seconds=0.25)}
        victim = min(pids)
        held_by_victim = {r for r, s, pid, _ in marks(markers) if s == "hold" and pid == victim}
        owners = set(
            FunctionRun.objects.filter(pk__in=held_by_victim).values_list("lease_owner", flat=True)
        )
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)
        orphans = set(
            FunctionRun.objects.filter(pk__in=ids, lease_owner__in=owners).values_list(
                "run_id", flat=True
            )
        )
        assert len(orphans) >= len(held_by_victim) >= 1
        release.touch()  # the survivor's holds end; the orphans' end at once when they resume

        def all_resumed() -> dict[str, float] | None:
            resumed = first_mark_after(markers, orphans, killed_at)
            return resumed if len(resumed) == len(orphans) else None

        resumed = wait_until(all_resumed, 60, f"the orphans to resume:\n{qcluster.output()}")
        still_queued = FunctionRun.objects.filter(pk__in=backlog, started_at__isnull=True).count()
        with capsys.disabled():
            print("\n" + report("kill -9, recovered behind a backlog", resumed))
        assert still_queued > 0, "the backlog was gone before the orphans resumed"
        assert max(resumed.values()) <= RECOVERY_BOUND_SECONDS, resumed
        wait_until(
            lambda: (
                FunctionRun.objects.filter(pk__in=ids, status=RunStatus.COMPLETED).count()
                == len(ids)
            ),
            60,
            "the runs in flight to complete",
        )


def test_runs_whose_wake_ups_redis_lost_resume_in_bounded_time(
    markers: Path, release: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import redis
    from django_q.brokers.redis_broker import Redis as RedisBroker
    from django_q.conf import Conf

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    # This process enqueues to the workers' Redis, as a web process would.
    broker = RedisBroker(list_key=f"tests{_SUFFIX}")
    broker.connection = client
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {None: broker})
    with cluster(markers, release, INNGEST_TEST_REDIS_URL=REDIS_URL) as qcluster:
        # Busy workers, and wake-ups waiting in Redis behind them.
        send_batch("testapp/hold", 2)
        wait_until(
            lambda: len({pid for _, s, pid, _ in marks(markers) if s == "hold"}) == 2,
            60,
            f"both workers to hold a run:\n{qcluster.output()}",
        )
        # One wake-up each: more than the cluster's pusher takes into memory ahead of time.
        waiting = {run.run_id for _ in range(40) for run in send_batch("testapp/hello", 1)}
        assert client.llen(broker.list_key) > 20
        lost_at = time.time()
        client.flushdb()  # the broker loses every wake-up it held
        release.touch()
        # Those the pusher had already taken into its cluster's memory were not lost.
        lost = waiting - set(
            FunctionRun.objects.filter(pk__in=waiting, started_at__isnull=False).values_list(
                "run_id", flat=True
            )
        )

        def all_done() -> bool:
            done = FunctionRun.objects.filter(pk__in=lost, status=RunStatus.COMPLETED)
            return done.count() == len(lost)

        wait_until(all_done, 60, f"the lost runs to complete:\n{qcluster.output()}")
        started = {
            run_id: started_at.timestamp() - lost_at
            for run_id, started_at in FunctionRun.objects.filter(pk__in=lost).values_list(
                "run_id", "started_at"
            )
        }
        with capsys.disabled():
            print("\n" + report("Redis FLUSHALL, lost wake-ups", started))
        assert lost, "no wake-up was lost"
        assert max(started.values()) <= RECOVERY_BOUND_SECONDS, started
