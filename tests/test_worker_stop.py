"""``manage.py inngest_worker`` stopping, with real clusters: a stopped worker hands its runs to
another worker at once (well before their leases would expire), whether the signal reaches the
main process alone (systemd's ``KillMode=mixed``) or every process of the cluster at once (the
default ``KillMode=control-group``; Ctrl-C), and the cluster exits instead of hanging."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from django_inngest.conf import settings as inngest_settings
from django_inngest.models import FunctionRun, RunStatus
from tests.qcluster import QCluster, wait_until
from tests.test_integration_qcluster import send_batch, wait_all_completed

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

#: From the signal until another worker runs the step again (the README states this bound).
RESUME_BOUND_SECONDS = 2.0


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers.log"
    path.touch()
    return path


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """Created by the test to let every ``testapp/hold`` step finish."""
    return tmp_path / "release"


@pytest.fixture
def real_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {})


def marks(markers: Path) -> list[tuple[str, str, int, float]]:
    """(run ID, step, pid, time) of every step execution so far."""
    rows = [line.split() for line in markers.read_text().splitlines()]
    return [(r[0], r[1], int(r[2]), float(r[3])) for r in rows if len(r) == 4]


@contextlib.contextmanager
def worker(markers: Path, release: Path, workers: int = 2) -> Iterator[QCluster]:
    """An ``inngest_worker`` cluster with the library's lease timing."""
    env = {
        "INNGEST_TEST_MARKERS": str(markers),
        "INNGEST_TEST_RELEASE": str(release),
        "INNGEST_TEST_LIBRARY_TIMING": "1",
        "INNGEST_TEST_WORKERS": str(workers),
    }
    cluster = QCluster("tests.integration_settings", env, command="inngest_worker")
    try:
        cluster.wait_ready(workers=workers)
        yield cluster
    finally:
        release.touch()  # nothing left blocked, whatever happened
        cluster.stop()


SIGNALS = {
    "TERM to the main process": lambda cluster: cluster.signal_leader(signal.SIGTERM),
    "TERM to every process": lambda cluster: cluster.signal_group(signal.SIGTERM),
    "INT to every process": lambda cluster: cluster.signal_group(signal.SIGINT),
}


@pytest.mark.parametrize("how", list(SIGNALS))
def test_a_stopped_worker_hands_its_runs_to_another_at_once(
    how: str, markers: Path, release: Path, real_dispatch: None
) -> None:
    with worker(markers, release) as first:
        runs = send_batch("testapp/hold", 4)
        ids = {run.run_id for run in runs}
        # Both worker processes are inside a hold step (and, one run at a time on SQLite, hold
        # the other runs of their batch, claimed and waiting their turn).
        first_pids = wait_until(
            lambda: (
                (pids := {pid for _, step, pid, _ in marks(markers) if step == "hold"})
                and len(pids) == 2
                and pids
            ),
            30,
            "both workers to be in a hold step",
        )
        # Room for every run at once, even on SQLite (one run at a time per worker process).
        with worker(markers, release, workers=4) as second:
            stopped_at = time.time()
            SIGNALS[how](first)
            if not first.exited_within(20):
                pytest.fail(
                    f"the cluster did not exit:\n{first.processes()}\n"
                    + "\n".join(first.lines)
                    + f"\n-- stacks --\n{first.stacks()}"
                )
            assert not first.group_alive(), "a process of the stopped cluster is left"
            assert first.process.returncode == 0, first.output()

            def resumed() -> dict[str, float]:
                return {
                    run_id: at - stopped_at
                    for run_id, step, pid, at in reversed(marks(markers))
                    if run_id in ids and step == "hold" and pid not in first_pids
                }

            resumed_after = wait_until(
                lambda: (found := resumed()) and len(found) == len(ids) and found,
                30,
                f"every run to resume on the second cluster:\n{second.output()}",
            )
            print(f"{how}: resumed after", sorted(round(v, 2) for v in resumed_after.values()))
            assert max(resumed_after.values()) <= RESUME_BOUND_SECONDS, resumed_after
            # Well before a lease would have expired: the runs were handed back, not lost.
            assert max(resumed_after.values()) < inngest_settings.LEASE_SECONDS / 2
            release.touch()
            wait_all_completed(runs, 30)
            assert {
                run.run_id: run.output
                for run in FunctionRun.objects.filter(pk__in=ids, status=RunStatus.COMPLETED)
            } == dict.fromkeys(ids, "released")
            befores = [run_id for run_id, step, _, _ in marks(markers) if step == "before"]
            assert sorted(befores) == sorted(ids)  # committed before the stop: never again
            assert "Traceback" not in first.output()
