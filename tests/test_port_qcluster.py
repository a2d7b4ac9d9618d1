"""inngest-py's documented examples (``tests/portapp``), ported by changing the import, run by
real ``qcluster`` workers against the test database (SQLite, or PostgreSQL with DATABASE_URL),
each asserting the documented outcome, for async functions and their sync twins."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import django_inngest as inngest
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, RunStatus, StepRun, WaitKind
from tests.portapp.inngest_functions import port_client
from tests.qcluster import QCluster, wait_until
from tests.test_integration_qcluster import running_cluster

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers.log"
    path.touch()
    return path


@pytest.fixture
def cluster(markers: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[QCluster]:
    from django_q.conf import Conf

    # Enqueue to the ORM broker as a web process would (tests.settings uses sync mode).
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {})
    with running_cluster(markers) as qcluster:
        yield qcluster


def labels(markers: Path, run_id: str) -> list[str]:
    return [
        line.split()[1] for line in markers.read_text().splitlines() if line.split()[0] == run_id
    ]


def send(name: str, **data: Any) -> dict[str, FunctionRun]:
    """Send one event; returns the runs it started, by function ID."""
    (event_id,) = port_client.send_sync(inngest.Event(name=name, data=data))
    return {run.function_id: run for run in FunctionRun.objects.filter(event_id=event_id)}


def finished(run: FunctionRun, timeout: float = 60) -> FunctionRun:
    wait_until(
        lambda: FunctionRun.objects.filter(pk=run.pk, ended_at__isnull=False).exists(),
        timeout,
        f"run {run.function_id} to end (now {FunctionRun.objects.get(pk=run.pk).status})",
    )
    return FunctionRun.objects.get(pk=run.pk)


def test_steps_and_a_half_second_sleep(cluster: QCluster) -> None:
    runs = send("port/user.signup", user_id="ada")
    assert set(runs) == {"port-signup-async", "port-signup-sync"}
    for function_id, run in runs.items():
        run = finished(run)
        assert run.status == RunStatus.COMPLETED, (function_id, run.error)
        assert run.output["signups"] == 1
        steps = {step.step_id: step for step in run.steps.all()}
        nap = steps["wait-a-moment"]
        assert (nap.wake_at - steps["get-user"].ended_at).total_seconds() >= 0.5
        # woke no earlier than asked, and the handler went on only after that
        assert steps["count-signups"].started_at >= nap.ended_at >= nap.wake_at
    assert runs["port-signup-async"].refresh_from_db() is None
    assert runs["port-signup-async"].output["user"] == {"id": "ada", "name": "Ada"}


def test_ctx_attempt_takes_the_fallback_on_the_third_attempt(
    cluster: QCluster, markers: Path
) -> None:
    runs = send("port/charge")
    for function_id, run in runs.items():
        run = finished(run)
        assert run.status == RunStatus.COMPLETED, (function_id, run.error)
        assert run.output == {"provider": "fallback", "amount": 42}
        assert labels(markers, run.run_id) == [f"charge-attempt-{n}" for n in range(3)]
        charge = run.steps.get(step_id="charge")
        assert charge.attempts == 3 and len(charge.attempt_log) == 3
        assert run.steps.get(step_id="load-order").attempts == 1  # never run again


def test_race_mode_completes_the_fast_branch_first_and_returns_every_result(
    cluster: QCluster,
) -> None:
    runs = send("port/race")
    for function_id, run in runs.items():
        run = finished(run)
        assert run.status == RunStatus.COMPLETED, (function_id, run.error)
        assert run.output == [["a.1", "a.2"], ["b.1", "b.2"]]
        ended = dict(run.steps.values_list("step_id", "ended_at"))
        assert sorted(ended, key=lambda step: ended[step]) == ["a.1", "a.2", "b.1", "b.2"]


def test_send_event_wait_for_event_and_invoke(cluster: QCluster) -> None:
    run = send("port/order.created", order=7)["port-order-async"]
    wait_until(
        lambda: FunctionRun.objects.filter(pk=run.pk, wait_kind=WaitKind.EVENT).exists(),
        30,
        "the order to wait for its payment",
    )
    assert StoredEvent.objects.filter(name="port/order.notified", data__order=7).count() == 1
    send("port/order.paid", order=8, amount=1)  # another order's payment: ignored
    send("port/order.paid", order=7, amount=30)
    run = finished(run)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == {
        "order": 7,
        "status": "paid",
        "receipt": {"receipt": "R-7", "amount": 30},
    }
    child = FunctionRun.objects.get(parent_run=run)
    assert child.function_id == "port-make-receipt" and child.status == RunStatus.COMPLETED


def test_non_retriable_error_and_an_async_on_failure(cluster: QCluster, markers: Path) -> None:
    run = finished(send("port/import")["port-import-async"])
    assert run.status == RunStatus.FAILED
    assert run.steps.get(step_id="parse").attempts == 1  # no retries
    failure = FunctionRun.objects.filter(function_id="port-import-async-failure")
    wait_until(lambda: failure.filter(status=RunStatus.COMPLETED).exists(), 30, "on_failure")
    assert failure.get().output == {"failed_run": run.run_id, "message": "the file is not a CSV"}
    assert labels(markers, run.run_id) == ["alerted"]


def test_an_async_run_cancelled_while_sleeping(cluster: QCluster, markers: Path) -> None:
    run = send("port/nap", id="n1")["port-nap-async"]
    wait_until(
        lambda: FunctionRun.objects.filter(pk=run.pk, wait_kind=WaitKind.SLEEP).exists(),
        30,
        "the run to sleep",
    )
    send("port/nap.cancel", id="n1")
    run = finished(run)
    assert run.status == RunStatus.CANCELLED
    assert labels(markers, run.run_id) == ["before"]
    cancelled = StoredEvent.objects.get(name="inngest/function.cancelled")
    assert cancelled.data["run_id"] == run.run_id


def test_step_timing_middleware_logs_each_executed_step_once(cluster: QCluster) -> None:
    run = finished(send("port/charge")["port-charge-async"])
    assert run.status == RunStatus.COMPLETED
    pattern = re.compile(rf"step '([\w.-]+)' took [\d.]+ ms \((\w+)\) run_id={run.run_id}")
    wait_until(
        lambda: sum(1 for line in cluster.lines if pattern.search(line)) >= 4,
        10,
        "the step timing lines",
    )
    logged = [pattern.search(line).groups() for line in cluster.lines if pattern.search(line)]  # type: ignore[union-attr]
    assert logged == [
        ("load-order", "ok"),
        ("charge", "error"),
        ("charge", "error"),
        ("charge", "ok"),
    ]
    assert StepRun.objects.filter(run=run).count() == 2
