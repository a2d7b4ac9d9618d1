"""Real ``qcluster`` worker processes against the test database (PostgreSQL in CI's second pass,
SQLite in the first): steps run once, ``kill -9`` mid-step, lost tasks, timers, waits, retries,
``on_failure``, and the race between cancellation and completion."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_inngest import Event, cancel_run
from django_inngest.engine.cancellation import RunAlreadyEndedError
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, RunStatus, StepRun, StepStatus
from tests.qcluster import QCluster, wait_until
from tests.testapp.inngest_functions import inngest_client

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers.log"
    path.touch()
    return path


@pytest.fixture
def real_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test process enqueues to the ORM broker, as a web process would (tests.settings
    runs django-q2 in sync mode, and django-q2 freezes its Conf at import)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {})


# tests/integration_settings.py: crash recovery is bounded by these.
LEASE_SECONDS = 3
REDISPATCH_AFTER_SECONDS = 2
TIMER_POLL_SECONDS = 0.1
#: The library's default DJANGO_INNGEST_TIMER_POLL_SECONDS.
DEFAULT_TIMER_POLL_SECONDS = 0.25


@contextlib.contextmanager
def running_cluster(markers: Path, **env: str) -> Iterator[QCluster]:
    qcluster = QCluster("tests.integration_settings", {"INNGEST_TEST_MARKERS": str(markers), **env})
    try:
        qcluster.wait_ready(workers=2)
        yield qcluster
    finally:
        qcluster.stop()


@pytest.fixture
def cluster(markers: Path, real_dispatch: None) -> Iterator[QCluster]:
    with running_cluster(markers) as qcluster:
        yield qcluster


@pytest.fixture
def default_poll_cluster(markers: Path, real_dispatch: None) -> Iterator[QCluster]:
    """Workers that look for due timers at the library's default pace, not the tests' 0.1 s."""
    with running_cluster(markers, INNGEST_TEST_TIMER_POLL=str(DEFAULT_TIMER_POLL_SECONDS)) as qc:
        yield qc


def executions(markers: Path, run_id: str) -> Counter[str]:
    return Counter(
        line.split()[1] for line in markers.read_text().splitlines() if line.split()[0] == run_id
    )


def send(event_name: str, **data: Any) -> FunctionRun | None:
    (event_id,) = inngest_client.send_sync(Event(name=event_name, data=data))
    return FunctionRun.objects.filter(event_id=event_id).first()


def wait_status(run: FunctionRun, status: str, timeout: float = 30) -> FunctionRun:
    wait_until(
        lambda: FunctionRun.objects.filter(pk=run.pk, status=status).exists(),
        timeout,
        f"run {run.run_id} to be {status} (now {FunctionRun.objects.get(pk=run.pk).status})",
    )
    return FunctionRun.objects.get(pk=run.pk)


def test_five_step_run_completes_with_each_step_once(cluster: QCluster, markers: Path) -> None:
    run = send("testapp/five")
    assert run is not None
    run = wait_status(run, RunStatus.COMPLETED)
    assert run.output == [1, 2, 3, 4, 5]
    assert executions(markers, run.run_id) == {f"step-{i}": 1 for i in range(1, 6)}
    assert list(StepRun.objects.filter(run=run).values_list("attempts", flat=True)) == [1] * 5


def test_kill_9_of_the_worker_mid_step_resumes_after_the_lease(
    cluster: QCluster, markers: Path
) -> None:
    run = send("testapp/five", slow=30)
    assert run is not None
    wait_until(lambda: executions(markers, run.run_id)["step-3"] == 1, 30, "step 3 to start")
    # A step that outlives a third of the lease is recorded as Running, so its crash is
    # charged to the step itself.
    wait_until(
        lambda: StepRun.objects.filter(run=run, step_id="step-3", status="Running").exists(),
        30,
        "step 3 to be recorded as Running",
    )
    pid = int(
        next(
            line.split()[2]
            for line in markers.read_text().splitlines()
            if line.split()[:2] == [run.run_id, "step-3"]
        )
    )
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)  # the worker process running step 3
    # The sentinel reincarnates the worker; our lease (3 s) expires; the poller redispatches and
    # step 3 runs again (at-least-once). Make that second attempt quick.
    StoredEvent.objects.filter(pk=run.event_id).update(data={"slow": 0})
    run = wait_status(run, RunStatus.COMPLETED, timeout=60)
    recovery = time.monotonic() - killed_at
    # Bounded: the lease runs out, a poller notices within a poll, then the run finishes.
    bound = LEASE_SECONDS + REDISPATCH_AFTER_SECONDS + TIMER_POLL_SECONDS + 8
    assert recovery < bound, f"recovered {recovery:.1f}s after the kill (bound {bound}s)"
    counts = executions(markers, run.run_id)
    assert counts["step-1"] == counts["step-2"] == 1  # committed before the kill: never again
    assert counts["step-3"] == 2  # cut off mid-way: ran again
    assert counts["step-4"] == counts["step-5"] == 1
    step3 = StepRun.objects.get(run=run, step_id="step-3")
    assert step3.attempts == 2
    assert step3.attempt_log[0]["error"]["name"] == "WorkerLostError"


def send_batch(event_name: str, count: int, **data: Any) -> list[FunctionRun]:
    """``count`` events in one send: their runs are dispatched together, several per task."""
    ids = inngest_client.send_sync(
        [Event(name=event_name, data={"n": i, **data}) for i in range(count)]
    )
    return list(FunctionRun.objects.filter(event_id__in=ids))


def wait_all_completed(runs: list[FunctionRun], timeout: float) -> None:
    ids = [run.run_id for run in runs]
    wait_until(
        lambda: (
            FunctionRun.objects.filter(pk__in=ids, status=RunStatus.COMPLETED).count() == len(ids)
        ),
        timeout,
        f"{len(ids)} runs to complete",
    )


def finished_events_per_run() -> Counter[str]:
    return Counter(
        StoredEvent.objects.filter(name="inngest/function.finished").values_list(
            "data__run_id", flat=True
        )
    )


def test_a_batch_from_one_send_runs_each_step_once(cluster: QCluster, markers: Path) -> None:
    runs = send_batch("testapp/five", 40)
    assert len(runs) == 40
    wait_all_completed(runs, 60)
    for run in runs:
        assert executions(markers, run.run_id) == {f"step-{i}": 1 for i in range(1, 6)}
    outputs = FunctionRun.objects.filter(pk__in=[r.run_id for r in runs]).values_list(
        "output", flat=True
    )
    assert all(output == [1, 2, 3, 4, 5] for output in outputs)
    assert finished_events_per_run() == {run.run_id: 1 for run in runs}


def test_kill_9_of_a_worker_holding_a_batch(cluster: QCluster, markers: Path) -> None:
    """The killed worker held several runs: those in a step, and (one at a time on SQLite)
    those claimed with them and waiting their turn. Every one completes after its lease;
    steps committed before the kill never run again."""
    runs = send_batch("testapp/five", 6, slow=8)
    ids = {run.run_id for run in runs}

    def in_step_3() -> list[str]:
        return [
            line.split()[2]
            for line in markers.read_text().splitlines()
            if line.split()[0] in ids and line.split()[1] == "step-3"
        ]

    pids = wait_until(in_step_3, 30, "a run to reach step 3")
    time.sleep(0.5)  # steps 1 and 2 are instant: every run this worker started is in step 3
    os.kill(int(pids[0]), signal.SIGKILL)
    StoredEvent.objects.filter(pk__in=[run.event_id for run in runs]).update(data={"slow": 0})
    wait_all_completed(runs, 60)
    cut_off = {
        line.split()[0]
        for line in markers.read_text().splitlines()
        if line.split()[1:3] == ["step-3", pids[0]]
    }
    assert cut_off
    for run in runs:
        counts = executions(markers, run.run_id)
        assert counts["step-1"] == counts["step-2"] == 1, counts  # committed: never again
        assert counts["step-4"] == counts["step-5"] == 1, counts
        assert counts["step-3"] == (2 if run.run_id in cut_off else 1), counts
    assert finished_events_per_run() == {run.run_id: 1 for run in runs}


def kill_the_cluster_in_step_3_then_restart(
    markers: Path, env: dict[str, str], after_kill: Callable[[], None] = lambda: None
) -> FunctionRun:
    """Start a five-step run, SIGKILL the whole cluster inside step 3, call ``after_kill``,
    start a new cluster and wait for the run to complete there; returns the completed run."""
    first = QCluster("tests.integration_settings", env)
    try:
        first.wait_ready(workers=2)
        run = send("testapp/five", slow=30)
        assert run is not None
        wait_until(lambda: executions(markers, run.run_id)["step-3"] == 1, 30, "step 3 to start")
    finally:
        first.kill9()
    after_kill()
    StoredEvent.objects.filter(pk=run.event_id).update(data={"slow": 0})  # a quick retry
    second = QCluster("tests.integration_settings", env)
    try:
        second.wait_ready(workers=2)
        return wait_status(run, RunStatus.COMPLETED, timeout=60)
    finally:
        second.stop()


def test_kill_9_of_the_whole_cluster_then_restart(markers: Path, real_dispatch: None) -> None:
    run = kill_the_cluster_in_step_3_then_restart(markers, {"INNGEST_TEST_MARKERS": str(markers)})
    counts = executions(markers, run.run_id)
    assert (counts["step-1"], counts["step-2"], counts["step-3"]) == (1, 1, 2)


def test_a_lost_task_is_redispatched(cluster: QCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from django_q.models import OrmQ

    # The broker "loses" the wake-up (as Redis does when a worker dies): nothing is enqueued,
    # neither in the sender's transaction (the ORM broker's path) nor after it.
    monkeypatch.setattr("django_inngest.executor._enqueue", lambda chunk: None)
    run = send("testapp/hello", name="lost")
    assert run is not None
    assert not OrmQ.objects.exists()
    run = wait_status(run, RunStatus.COMPLETED, timeout=30)
    assert run.output == "hello lost"


def test_sleep_wakes_within_a_second_of_its_due_time(default_poll_cluster: QCluster) -> None:
    runs = [send("testapp/sleep", seconds=2) for _ in range(8)]
    lateness = []
    for run in runs:
        assert run is not None
        wait_status(run, RunStatus.COMPLETED, timeout=30)
        step = StepRun.objects.get(run=run, step_id="nap")
        assert step.wake_at is not None and step.ended_at is not None
        lateness.append((step.ended_at - step.wake_at).total_seconds())
    assert min(lateness) >= 0  # never early
    p95 = statistics.quantiles(lateness, n=20)[-1]
    assert p95 <= 1.0, lateness


def test_wait_for_event_with_a_match_and_with_a_timeout(cluster: QCluster) -> None:
    matched = send("testapp/wait", id="a", timeout=60)
    timed_out = send("testapp/wait", id="b", timeout=2)
    assert matched is not None and timed_out is not None
    wait_until(lambda: StepRun.objects.filter(run=matched, step_id="approval").exists(), 30, "wait")
    inngest_client.send_sync(Event(name="testapp/approved", data={"id": "other"}))
    inngest_client.send_sync(Event(name="testapp/approved", data={"id": "a", "ok": True}))
    assert wait_status(matched, RunStatus.COMPLETED).output == {"id": "a", "ok": True}
    assert wait_status(timed_out, RunStatus.COMPLETED).output is None


def test_retries_with_backoff_then_success(cluster: QCluster, markers: Path) -> None:
    run = send("testapp/flaky")
    assert run is not None
    run = wait_status(run, RunStatus.COMPLETED)
    assert run.output == "ok after 3"
    step = StepRun.objects.get(run=run)
    assert step.attempts == 3
    starts = [entry["started_at"] for entry in step.attempt_log]
    assert starts == sorted(starts)
    assert [bool(entry.get("error")) for entry in step.attempt_log] == [True, True, False]


def test_non_retriable_error_and_on_failure_payload(cluster: QCluster, markers: Path) -> None:
    run = send("testapp/doomed")
    assert run is not None
    run = wait_status(run, RunStatus.FAILED)
    assert StepRun.objects.get(run=run).attempts == 1  # no retries
    failure = wait_until(
        lambda: FunctionRun.objects.filter(
            function_id="testapp-doomed-failure", status=RunStatus.COMPLETED
        ).first(),
        30,
        "on_failure to complete",
    )
    assert failure.output == {"failed_run": run.run_id, "error": "cannot continue"}
    failed_event = StoredEvent.objects.get(name="inngest/function.failed")
    assert failed_event.external_id == run.run_id
    assert failed_event.data["function_id"] == "testapp-doomed"
    assert failed_event.data["event"]["name"] == "testapp/doomed"
    # The worker logged its end once, on one line, and no traceback.
    output = "\n".join(cluster.lines)
    assert output.count(f"Run failed run_id={run.run_id} function=testapp-doomed") == 1, output
    assert "Traceback" not in output


def test_cancel_racing_completion_ends_each_run_exactly_once(cluster: QCluster) -> None:
    runs = [send("testapp/race", n=i) for i in range(40)]
    errors: list[BaseException] = []

    def cancel_all(offset: int) -> None:
        try:
            for run in runs[offset::2]:
                assert run is not None
                with contextlib.suppress(RunAlreadyEndedError):
                    cancel_run(run.run_id, source="api", reason="race")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=cancel_all, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    # Cancel events race too, through the event path.
    for i in range(0, 40, 3):
        inngest_client.send_sync(Event(name="testapp/race.cancel", data={"n": i}))
    for thread in threads:
        thread.join()
    assert not errors
    ids = [r.run_id for r in runs if r is not None]
    wait_until(
        lambda: not FunctionRun.objects.filter(pk__in=ids).active().exists(), 30, "all runs to end"
    )
    statuses = dict(FunctionRun.objects.filter(pk__in=ids).values_list("run_id", "status"))
    assert set(statuses.values()) <= {RunStatus.COMPLETED, RunStatus.CANCELLED}
    assert RunStatus.CANCELLED in statuses.values()
    wait_until(
        lambda: (
            StoredEvent.objects.filter(name="inngest/function.cancelled").count()
            == list(statuses.values()).count(RunStatus.CANCELLED)
        ),
        30,
        "one function.cancelled per cancelled run",
    )
    finished = Counter(
        StoredEvent.objects.filter(name="inngest/function.finished").values_list(
            "data__run_id", flat=True
        )
    )
    assert finished == dict.fromkeys(ids, 1)  # exactly one terminal event set per run
    cancelled_events = set(
        StoredEvent.objects.filter(name="inngest/function.cancelled").values_list(
            "external_id", flat=True
        )
    )
    assert cancelled_events == {rid for rid, s in statuses.items() if s == RunStatus.CANCELLED}
    assert not StoredEvent.objects.filter(name="inngest/function.failed").exists()


#: Concurrent test runs on one machine (INNGEST_TEST_DB_SUFFIX) each get their own Redis db.
_SUFFIX = os.environ.get("INNGEST_TEST_DB_SUFFIX", "")
REDIS_URL = f"redis://127.0.0.1:6379/{7 + sum(map(ord, _SUFFIX)) % 8}"


def test_redis_broker_drops_the_in_flight_task_and_the_run_still_completes(
    markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {"INNGEST_TEST_MARKERS": str(markers), "INNGEST_TEST_REDIS_URL": REDIS_URL}
    # This process never enqueues: the workers' pollers dispatch through Redis. When the
    # cluster is killed, BLPOP has already taken the task out of Redis: it is lost.
    monkeypatch.setattr("django_inngest.executor.dispatch", lambda run_ids: None)

    def nothing_left_in_redis() -> None:
        assert redis.Redis.from_url(REDIS_URL).llen(f"django_q:tests{_SUFFIX}:q") == 0

    run = kill_the_cluster_in_step_3_then_restart(markers, env, nothing_left_in_redis)
    counts = executions(markers, run.run_id)
    assert (counts["step-1"], counts["step-2"], counts["step-3"]) == (1, 1, 2)
    assert run.output == [1, 2, 3, 4, 5]


def test_a_sleep_survives_a_worker_restart(markers: Path, real_dispatch: None) -> None:
    env = {"INNGEST_TEST_MARKERS": str(markers)}
    first = QCluster("tests.integration_settings", env)
    try:
        first.wait_ready(workers=2)
        run = send("testapp/sleep", seconds=4)
        assert run is not None
        wait_until(
            lambda: FunctionRun.objects.filter(pk=run.pk, wait_kind="sleep").exists(), 30, "sleep"
        )
    finally:
        # Killed, not stopped: a graceful stop could last long enough to finish the sleep.
        first.kill9()  # the timer lives in the run's row, not in any process
    killed_at = timezone.now()
    # Nothing finished the sleep: the run is still asleep when no worker is left.
    run = FunctionRun.objects.get(pk=run.pk)
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, "sleep")
    nap = StepRun.objects.get(run=run, step_id="nap")
    assert nap.status == StepStatus.SLEEPING and nap.ended_at is None
    assert nap.wake_at is not None and nap.wake_at > killed_at
    second = QCluster("tests.integration_settings", env)
    try:
        second.wait_ready(workers=2)
        run = wait_status(run, RunStatus.COMPLETED, timeout=30)
    finally:
        second.stop()
    assert run.output == "awake"
    nap = StepRun.objects.get(run=run, step_id="nap")
    assert nap.ended_at is not None and nap.wake_at is not None and nap.ended_at >= nap.wake_at
    assert nap.ended_at > killed_at  # woken by the second cluster
