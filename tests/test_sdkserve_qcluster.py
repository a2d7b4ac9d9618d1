"""SDK-served functions on real ``qcluster`` workers (PostgreSQL in CI's second pass, SQLite in
the first): the workers call the inngest-py app on the test's live server over HTTP, sleep by
the poller, and survive a worker killed in the middle of a call."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from django_inngest import executor
from django_inngest.models import FunctionRun, RunStatus, StepRun, StepStatus
from tests.qcluster import QCluster, wait_until
from tests.sdkserve.app import probe
from tests.sdkserve.fixtures import SdkServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


#: Taken before any test collects dispatches instead (``sdk_server`` does).
REAL_DISPATCH = executor.dispatch


@pytest.fixture
def cluster(sdk_server: SdkServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[QCluster]:
    """Two real workers; this process enqueues to the ORM broker, as a web process would."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {})
    monkeypatch.setattr("django_inngest.executor.dispatch", REAL_DISPATCH)
    qcluster = QCluster("tests.integration_settings")
    try:
        qcluster.wait_ready(workers=2)
        yield qcluster
    finally:
        qcluster.stop()


def wait_status(run: FunctionRun, status: str, timeout: float = 60) -> FunctionRun:
    wait_until(
        lambda: FunctionRun.objects.filter(pk=run.pk, status=status).exists(),
        timeout,
        f"run {run.run_id} to be {status} (now {FunctionRun.objects.get(pk=run.pk).status})",
    )
    return FunctionRun.objects.get(pk=run.pk)


def callers(cluster: QCluster, port: int) -> list[int]:
    """The cluster's processes with a TCP connection open to ``port`` (the live server)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":  # ESTABLISHED
                    inodes.add(fields[9])
    group = os.getpgid(cluster.process.pid)
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.getpgid(pid) != group:
                continue
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except (OSError, ProcessLookupError):
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            found.append(pid)
    return found


def test_runs_advance_on_real_workers_and_sleeps_wake_by_the_poller(
    cluster: QCluster, sdk_server: SdkServer
) -> None:
    steps = sdk_server.send("sdks/steps")
    sleeper = sdk_server.send("sdks/sleep", seconds=2)
    assert wait_status(steps, RunStatus.COMPLETED).output == [1, 2, 3, 10]
    sleeper = wait_status(sleeper, RunStatus.COMPLETED, timeout=30)
    assert sleeper.output == "awake"
    nap = StepRun.objects.get(run=sleeper, display_name="nap")
    assert nap.ended_at is not None and nap.wake_at is not None and nap.ended_at >= nap.wake_at
    assert probe.executions[sleeper.run_id] == ["before", "after"]
    assert probe.executions[steps.run_id] == ["s1", "s2", "s3", "s10"]


def test_a_worker_killed_mid_call_resumes_and_memoizes_the_step_once(
    cluster: QCluster, sdk_server: SdkServer, live_server: Any
) -> None:
    run = sdk_server.send("sdks/slow")
    assert probe.arrived(run.run_id).wait(30), f"the step never started\n{cluster.output()}"
    port = int(live_server.url.rsplit(":", 1)[1])
    [pid] = wait_until(lambda: callers(cluster, port), 10, "the worker waiting on the app")
    os.kill(pid, signal.SIGKILL)  # the worker dies waiting for the app's answer
    probe.gate(run.run_id).set()  # the app finishes the step; nobody reads the answer
    run = wait_status(run, RunStatus.COMPLETED, timeout=60)
    assert run.output == "finished"
    # The lost answer's step ran again (at-least-once), and was memoized once.
    assert probe.count(run.run_id, "blocked") == 2
    assert probe.count(run.run_id, "next") == 1
    [blocked] = StepRun.objects.filter(run=run, display_name="blocked")
    assert blocked.status == StepStatus.COMPLETED and blocked.output == "late"
    assert StepRun.objects.filter(run=run).count() == 2
