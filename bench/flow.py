"""Flow control on a real qcluster (PostgreSQL, ORM broker, 2 workers), each figure against a
baseline taken in the same run:

- ``wide``: a 10-step function with ``Concurrency(limit=100)``, above what the cluster can
  execute at once, ÷ the same function without the option (target ≥ 0.9: the gate costs
  almost nothing when it does not bind);
- ``keyed``: 100 keys with ``limit=1`` each ÷ unlimited (target ≥ 0.8);
- ``tight``: ``limit=3``, 5 ms steps: the most step bodies seen executing at once (≤ 3);
- debounce (1 s) and cron fire lateness, and throttle (5/s) start spacing error: p95 ≤ 1 s;
- in process: what one incoming event costs with 10 and with 10,000 debounced (and batched)
  keys pending (target: ≤ 2x).

Rounds rotate their order; ratios are medians of per-round ratios.

    .venv/bin/python bench/flow.py [--rounds 3] [--runs 150] [--pending 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DATA_DIR,
    drop_pg,
    emit_result,
    fmt_rate,
    median,
    migrate,
    percentile,
    recreate_pg,
    run_child,
    setup_django,
)

DB_NAME = "bench_inngest_flow"
TIMEOUT = 300.0


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    current = peak = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


def pending_cost(pending: int, samples: int = 60) -> dict[str, float]:
    """In process: the median time of one send to a debounced / batched function while
    ``pending`` other keys wait (each a held run). No cluster; dispatch is off."""

    from bench.benchapp.inngest_functions import FLOW_BATCHED, FLOW_DEBOUNCED, bench_client
    from django_inngest import Event as SdkEvent
    from django_inngest import executor
    from django_inngest.models import FunctionRun, RunEvent

    executor.dispatch = lambda run_ids: None  # type: ignore[assignment]
    out = {}
    for label, name, fid in (
        ("debounce", "bench/flow.debounce", FLOW_DEBOUNCED),
        ("batch", "bench/flow.batch", FLOW_BATCHED),
    ):
        RunEvent.objects.all().delete()
        FunctionRun.objects.filter(function_id=fid).delete()
        tag = uuid.uuid4().hex[:6]
        sent = 0
        while sent < pending:
            n = min(500, pending - sent)
            bench_client.send_sync(
                [SdkEvent(name=name, data={"key": f"{tag}-{sent + i}"}) for i in range(n)]
            )
            sent += n
        assert FunctionRun.objects.filter(function_id=fid).count() == pending
        timings = []
        for i in range(samples):
            key = f"{tag}-{i % max(1, pending)}"  # an existing key: extend / append
            start = time.perf_counter()
            bench_client.send_sync(SdkEvent(name=name, data={"key": key}))
            timings.append(time.perf_counter() - start)
        out[label] = statistics.median(timings) * 1000
    return out


def child(args: argparse.Namespace) -> None:
    setup_django({})
    from django.db.models import Max, Min
    from django.utils import timezone

    from bench.benchapp.inngest_functions import (
        FLOW_CRON,
        FLOW_DEBOUNCED,
        FLOW_KEYED,
        FLOW_THROTTLED,
        FLOW_TIGHT,
        FLOW_WIDE,
        STEPS_10,
        bench_client,
    )
    from django_inngest import Event as SdkEvent
    from django_inngest.models import CronSchedule, FunctionRun, RunStatus
    from django_inngest.registrations import sync_registrations
    from tests.qcluster import QCluster

    result: dict[str, Any] = {"rounds": []}
    result["pending_cost"] = {
        str(n): pending_cost(n) for n in (10, args.pending)
    }  # before the cluster: no worker competes
    cluster = QCluster("bench.settings")
    try:
        cluster.wait_ready(workers=args.workers, timeout=120)
        time.sleep(1.0)
        sync_registrations()

        def steps(name: str, fid: str, runs: int, keyed: bool = False) -> float:
            t0 = time.time()
            start = timezone.now()
            for first in range(0, runs, 100):
                bench_client.send_sync(
                    [
                        SdkEvent(
                            name=name, data={"i": i, "key": f"k{i % 100}"} if keyed else {"i": i}
                        )
                        for i in range(first, min(runs, first + 100))
                    ]
                )
            mine = FunctionRun.objects.filter(function_id=fid, created_at__gte=start)
            wait_for(
                lambda: mine.filter(status=RunStatus.COMPLETED).count() >= runs,
                TIMEOUT,
                f"{runs} runs of {fid}",
                0.1,
            )
            last = mine.aggregate(m=Max("ended_at"))["m"]
            return 10 * runs / (last.timestamp() - t0)

        tests = {
            "unlimited": lambda: steps("bench/steps.10", STEPS_10, args.runs),
            "wide": lambda: steps("bench/flow.wide", FLOW_WIDE, args.runs),
            "keyed": lambda: steps("bench/flow.keyed", FLOW_KEYED, args.runs, keyed=True),
        }
        order = list(tests)
        for r in range(args.rounds):
            shift = r % len(order)
            rates = {name: tests[name]() for name in order[shift:] + order[:shift]}
            result["rounds"].append(rates)
            print(
                f"  round {r + 1}/{args.rounds}: "
                + ", ".join(f"{k}={fmt_rate(v)}/s" for k, v in rates.items()),
                flush=True,
            )

        # The most step bodies at once under limit=3.
        marks = DATA_DIR / f"tight-{uuid.uuid4().hex}.txt"
        marks.touch()
        start = timezone.now()
        bench_client.send_sync(
            [
                SdkEvent(name="bench/flow.tight", data={"path": str(marks), "i": i})
                for i in range(40)
            ]
        )
        tight = FunctionRun.objects.filter(function_id=FLOW_TIGHT, created_at__gte=start)
        wait_for(lambda: tight.filter(status=RunStatus.COMPLETED).count() >= 40, TIMEOUT, "tight")
        spans: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for line in marks.read_text().splitlines():
            run_id, step, edge, at = line.split()
            spans[(run_id, step)][edge] = float(at)
        result["tight_peak"] = max_overlap([(s["start"], s["end"]) for s in spans.values()])
        marks.unlink()

        # Debounce: 20 keys, 3 events each 0.2 s apart; lateness after the period ends.
        start = timezone.now()
        last_sent: dict[str, float] = {}
        for _burst in range(3):
            for k in range(20):
                bench_client.send_sync(SdkEvent(name="bench/flow.debounce", data={"key": f"d{k}"}))
                last_sent[f"d{k}"] = time.time()
            time.sleep(0.2)
        fired = FunctionRun.objects.filter(function_id=FLOW_DEBOUNCED, created_at__gte=start)
        wait_for(lambda: fired.filter(status=RunStatus.COMPLETED).count() >= 20, 60, "debounces")
        result["debounce_lateness"] = [
            run.started_at.timestamp() - (last_sent[run.event.data["key"]] + 1.0)
            for run in fired.select_related("event")
        ]

        # Throttle 5/s, burst 0: 25 starts, spacing against the ideal 0.2 s.
        start = timezone.now()
        bench_client.send_sync(
            [SdkEvent(name="bench/flow.throttle", data={"i": i}) for i in range(25)]
        )
        throttled = FunctionRun.objects.filter(function_id=FLOW_THROTTLED, created_at__gte=start)
        wait_for(
            lambda: throttled.filter(status=RunStatus.COMPLETED).count() >= 25, 60, "throttled"
        )
        starts = sorted(r.started_at.timestamp() for r in throttled)
        result["throttle_spacing_error"] = [
            abs((starts[i] - starts[0]) - 0.2 * i) for i in range(len(starts))
        ]
        first = throttled.aggregate(m=Min("started_at"))["m"]
        result["throttle_span"] = starts[-1] - first.timestamp()

        # Cron: 10 ticks, each a couple of seconds ahead.
        lateness = []
        for _ in range(10):
            tick = (timezone.now() + timedelta(seconds=1.5)).replace(microsecond=0)
            CronSchedule.objects.filter(function_id=FLOW_CRON).update(next_tick_at=tick)
            runs = FunctionRun.objects.filter(
                function_id=FLOW_CRON, created_at__gte=tick - timedelta(seconds=5)
            )
            run = wait_for(
                lambda runs=runs: runs.filter(status=RunStatus.COMPLETED).first(), 30, "cron"
            )
            lateness.append(run.started_at.timestamp() - tick.timestamp())
            run.delete()
        result["cron_lateness"] = lateness
    except Exception:
        print(f"qcluster output (last lines):\n{cluster.output()}", flush=True)
        raise
    finally:
        cluster.stop()
    emit_result(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=150, help="10-step runs per measurement")
    parser.add_argument("--pending", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"flow: PostgreSQL, ORM broker, {args.workers} workers, {args.rounds} rounds of "
        f"{args.runs} 10-step runs; cores={os.cpu_count()}; load {os.getloadavg()}",
        flush=True,
    )
    env = {
        "BENCH_DATABASE_URL": recreate_pg(DB_NAME),
        "BENCH_BROKER": "orm",
        "BENCH_WORKERS": str(args.workers),
        "BENCH_Q_POLL": "0.05",
    }
    try:
        migrate(env)
        child_args = ["--child", "--rounds", str(args.rounds), "--runs", str(args.runs),
                      "--pending", str(args.pending), "--workers", str(args.workers)]  # fmt: skip
        result = run_child("flow.py", child_args, env)
    finally:
        drop_pg(DB_NAME)
    report(result)


def report(result: dict[str, Any]) -> None:
    rounds = result["rounds"]
    print(f"\n== medians of {len(rounds)} rounds (load after: {os.getloadavg()}) ==")
    base = median([r["unlimited"] for r in rounds])
    wide = median([r["wide"] / r["unlimited"] for r in rounds])
    keyed = median([r["keyed"] / r["unlimited"] for r in rounds])
    print(f"unlimited 10-step steps/s          {fmt_rate(base):>8}")
    print(f"Concurrency(limit=100) ÷ unlimited   {wide:.2f} (target ≥ 0.9)")
    print(f"100 keys, limit=1 each ÷ unlimited   {keyed:.2f} (target ≥ 0.8)")
    print(f"most step bodies at once, limit=3    {result['tight_peak']} (must be ≤ 3)")
    for label in ("debounce_lateness", "cron_lateness", "throttle_spacing_error"):
        values = result[label]
        print(
            f"{label:<34} p50 {percentile(values, 50) * 1000:.0f} ms, "
            f"p95 {percentile(values, 95) * 1000:.0f} ms (n={len(values)}; target p95 ≤ 1 s)"
        )
    costs = result["pending_cost"]
    small, large = min(costs, key=int), max(costs, key=int)
    for label in ("debounce", "batch"):
        ratio = costs[large][label] / costs[small][label]
        print(
            f"one {label} event with {small} / {large} keys pending: "
            f"{costs[small][label]:.2f} / {costs[large][label]:.2f} ms = {ratio:.2f}x (target ≤ 2)"
        )


if __name__ == "__main__":
    main()
