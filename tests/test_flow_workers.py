"""Flow control with real ``qcluster`` workers (tests/integration_settings.py: 2 workers, and on
PostgreSQL 4 runs per worker at once): what only timing across processes shows."""

from __future__ import annotations

import itertools
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_inngest import Event
from django_inngest.models import CronSchedule, FunctionRun, RunStatus
from django_inngest.registrations import sync_registrations
from tests.qcluster import QCluster, wait_until
from tests.test_integration_qcluster import running_cluster
from tests.testapp.inngest_functions import inngest_client

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "markers.log"
    path.touch()
    return path


@pytest.fixture
def workers(marks: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[QCluster]:
    """A real cluster; this process enqueues to its ORM broker, as a web process would."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_inngest.executor._brokers", {})
    with running_cluster(marks) as qcluster:
        yield qcluster


def spans(markers: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(run, step) -> {"start": t, "end": t} from ``mark_span`` lines."""
    found: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for line in markers.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5:
            run_id, step_id, _pid, edge, at = parts
            found[(run_id, step_id)][edge] = float(at)
    return found


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


def all_ended(function_id: str, count: int, timeout: float = 60) -> list[FunctionRun]:
    def done() -> list[FunctionRun] | None:
        runs = list(FunctionRun.objects.filter(function__function_id=function_id))
        ended = [r for r in runs if r.is_ended]
        return runs if len(runs) == count and len(ended) == count else None

    try:
        runs: list[FunctionRun] = wait_until(done, timeout, f"{count} runs of {function_id} ended")
    except AssertionError:
        states = FunctionRun.objects.filter(function__function_id=function_id).values_list(
            "run_id", "status", "wait_kind", "ready_at", "lease_owner", "waiting_key", "queue_at"
        )
        raise AssertionError(f"{function_id} runs: {list(states)}") from None
    return runs


def test_never_more_step_bodies_at_once_than_the_concurrency_limit(
    workers: QCluster, marks: Path
) -> None:
    inngest_client.send_sync(
        [Event(name="testapp/gated", data={"key": "a", "n": i}) for i in range(10)]
        + [Event(name="testapp/gated", data={"key": "b", "n": i}) for i in range(4)]
    )
    runs = all_ended("testapp-gated", 14, timeout=90)
    assert {r.status for r in runs} == {RunStatus.COMPLETED}
    assert {r.output for r in runs} == {3}
    by_run = {r.run_id: r.event.data["key"] for r in runs}
    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (run_id, _), edges in spans(marks).items():
        intervals[by_run[run_id]].append((edges["start"], edges["end"]))
    assert len(intervals["a"]) == 30 and len(intervals["b"]) == 12  # each step once
    peak_a, peak_b = max_overlap(intervals["a"]), max_overlap(intervals["b"])
    assert peak_a <= 1 and peak_b <= 1  # limit=1 per key, across both worker processes
    every = intervals["a"] + intervals["b"]
    assert max_overlap(every) >= 2  # two keys are two queues: together they exceed one limit
    print(f"peak executing steps: key a {peak_a}, key b {peak_b}, all {max_overlap(every)}")


def test_debounce_fires_once_with_the_last_event_within_a_second(
    workers: QCluster, marks: Path
) -> None:
    for n in range(4):
        inngest_client.send_sync(Event(name="testapp/debounced", data={"key": "k", "n": n}))
        time.sleep(0.3)
    last_sent = time.time() - 0.3
    (run,) = all_ended("testapp-debounced", 1, timeout=30)
    assert (run.status, run.output) == (RunStatus.COMPLETED, 3)
    ((_, edges),) = spans(marks).items()
    lateness = edges["start"] - (last_sent + 1.0)  # period 1 s after the last event
    assert -0.1 < lateness < 1.0, lateness


def test_throttled_starts_are_spaced_one_period_apart(workers: QCluster, marks: Path) -> None:
    inngest_client.send_sync([Event(name="testapp/throttled", data={"n": i}) for i in range(4)])
    all_ended("testapp-throttled", 4, timeout=60)
    starts = sorted(edges["start"] for edges in spans(marks).values())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # limit 1 per 1 s, burst 0: one start per second, each within a second of its due time.
    assert all(0.9 < gap < 2.0 for gap in gaps), gaps
    errors = [abs(gap - 1.0) for gap in gaps]
    assert statistics.median(errors) < 1.0


def test_a_cron_tick_starts_one_run_within_a_second(workers: QCluster, marks: Path) -> None:
    sync_registrations()
    tick = (timezone.now() + timedelta(seconds=2)).replace(microsecond=0)
    CronSchedule.objects.filter(function__function_id="testapp-yearly").update(next_tick_at=tick)
    (run,) = all_ended("testapp-yearly", 1, timeout=30)
    assert run.status == RunStatus.COMPLETED
    assert run.output == tick.strftime("%Y-%m-%dT%H:%M:%SZ")
    ((_, edges),) = spans(marks).items()
    lateness = edges["start"] - tick.timestamp()
    assert 0 <= lateness < 1.0, lateness
    time.sleep(1.0)  # the workers keep polling: still exactly one run for that tick
    assert FunctionRun.objects.filter(function__function_id="testapp-yearly").count() == 1
