"""Step and run throughput on a real qcluster, against raw django-q2 no-op tasks, plus sleep
wake-up lateness.

For each broker (ORM, then Redis) a child process creates a fresh PostgreSQL database, starts
``manage.py qcluster`` (bench/settings.py: example_project's Q_CLUSTER, ``save_limit=-1``,
persistent connections) and, each round, in rotating order:

- ``raw``: N no-op django-q2 tasks (``bench.benchapp.tasks.noop_mark``) enqueued with
  ``async_task`` through one shared broker, with the options ``executor.dispatch`` uses. With
  ``save_limit=-1`` django-q2 records nothing, so each task appends its end time (an 18-byte
  ``O_APPEND`` write, no database write) to a file: tasks/s = N / (last end - first enqueue).
- ``raw_write``: N/2 tasks that each INSERT one row (``bench.benchapp.tasks.write_mark``):
  what a minimal durable task costs on the same cluster; for context, not a target.
- ``steps10``: R runs of a 10-step no-op function, sent 100 events per ``send_sync`` call:
  steps/s = 10·R / (last run's ``ended_at`` - first send).
- ``steps10_async``: the same with an ``async def`` handler and ``async def`` step bodies;
  reported ÷ ``steps10`` of the same round (target ≥ 0.8).
- ``steps1``: R runs of a 1-step function: runs/s likewise.
- ``steps1_each``: R/3 runs of the 1-step function, one event per ``send_sync`` call, so each
  run is its own task (no batch): for context, not a target.

Both sides include the producer's work (enqueue, or send: event + run rows + enqueue) on the
same 2 cores. Ratios are medians of the per-round ratios. Targets: steps10 ÷ raw ≥ 1.0 and
steps1 ÷ raw ≥ 0.5. Then ``sleep``: for each of ``--sleep-seconds`` (2, 0.5 and 0.1 s), K runs of
``step.sleep`` started 0.1 s apart on the idle cluster; lateness = the sleep step's ``ended_at`` -
its ``wake_at``. A sleep within one timer poll is slept in the worker; longer ones pause.

Before the cluster starts, one run of each function is advanced in-process to count the queries
and transactions per run (``--no-profile`` skips it).

    .venv/bin/python bench/steps.py [--quick] [--brokers orm,redis] [--rounds 3] [--raw 2000]
        [--runs10 150] [--runs1 600] [--sleepers 20] [--workers 2]
        [--timer-poll S] [--budget S] [--q-poll S]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DATA_DIR,
    REDIS_URL,
    drop_pg,
    emit_result,
    flush_redis,
    fmt_rate,
    median,
    migrate,
    percentile,
    recreate_pg,
    run_child,
    setup_django,
)

DB_NAME = "bench_inngest_steps"
WAIT_TIMEOUT = 300.0


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def count_transactions(queries: list[dict[str, Any]]) -> int:
    """BEGIN..COMMIT blocks plus statements run in autocommit (each its own transaction)."""
    count, inside = 0, False
    for query in queries:
        verb = query["sql"].split()[0].upper()
        if verb == "BEGIN":
            count, inside = count + 1, True
        elif verb in ("COMMIT", "ROLLBACK"):
            inside = False
        elif not inside and verb not in ("SAVEPOINT", "RELEASE"):
            count += 1
    return count


def profile_queries() -> dict[str, Any]:
    """Advance one run of each function in this process and count its queries (no cluster)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.benchapp.inngest_functions import STEPS_1, STEPS_10, STEPS_10_ASYNC, bench_client
    from django_inngest import Event as SdkEvent
    from django_inngest.engine import worker as engine
    from django_inngest.models import FunctionRun

    out: dict[str, Any] = {}
    for label, name, fid in (
        ("steps10", "bench/steps.10", STEPS_10),
        ("steps10_async", "bench/steps.10.async", STEPS_10_ASYNC),
        ("steps1", "bench/steps.1", STEPS_1),
    ):
        timings = []
        for attempt in range(6):  # the first warms caches (CEL, registrations, connections)
            with CaptureQueriesContext(connection) as sent:
                bench_client.send_sync(SdkEvent(name=name, data={"i": attempt}))
            run = FunctionRun.objects.filter(function_id=fid).order_by("-created_at").first()
            assert run is not None
            start = time.perf_counter()
            with CaptureQueriesContext(connection) as advanced:
                outcome = engine.advance(run.run_id)
            timings.append(time.perf_counter() - start)
        took = median(timings[1:])
        kinds = Counter(q["sql"].split()[0].upper() for q in advanced.captured_queries)
        out[label] = {
            "outcome": outcome,
            "send_queries": len(sent.captured_queries),
            "advance_queries": len(advanced.captured_queries),
            "advance_transactions": count_transactions(advanced.captured_queries),
            "by_kind": dict(kinds),
            "advance_ms_in_process": took * 1000,  # median of 5
        }
    return out


def child(args: argparse.Namespace) -> None:
    setup_django({})
    from django.db.models import Max
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    from bench.benchapp.inngest_functions import (
        SLEEPER,
        STEPS_1,
        STEPS_10,
        STEPS_10_ASYNC,
        bench_client,
    )
    from bench.benchapp.models import Mark
    from django_inngest import Event as SdkEvent
    from django_inngest.models import FunctionRun, RunStatus, StepKind, StepRun
    from tests.qcluster import QCluster

    broker = get_broker()
    result: dict[str, Any] = {"rounds": []}
    if args.profile:
        result["profile"] = profile_queries()
    broker.purge_queue()
    if os.environ.get("BENCH_BROKER") == "orm":
        from django_q.models import OrmQ

        OrmQ.objects.all().delete()

    cluster = QCluster("bench.settings")
    try:
        cluster.wait_ready(workers=args.workers, timeout=120)
        time.sleep(1.0)  # let the pollers sync registrations

        def raw(n: int) -> float:
            path = DATA_DIR / f"marks-{uuid.uuid4().hex}.txt"
            path.touch()
            t0 = time.time()
            for i in range(n):
                async_task(
                    "bench.benchapp.tasks.noop_mark",
                    str(path),
                    q_options={"save": False, "task_name": f"raw {i}", "broker": broker},
                )
            wait_for(lambda: path.stat().st_size >= 18 * n, WAIT_TIMEOUT, f"{n} raw tasks")
            last = max(float(line) for line in path.read_text().split())
            path.unlink()
            return n / (last - t0)

        def ours(name: str, fid: str, runs: int, steps: int, per_send: int = 100) -> float:
            t0 = time.time()
            start = timezone.now()
            sent = 0
            while sent < runs:
                batch = min(per_send, runs - sent)
                bench_client.send_sync(
                    [SdkEvent(name=name, data={"i": sent + i}) for i in range(batch)]
                )
                sent += batch
            batch_runs = FunctionRun.objects.filter(function_id=fid, created_at__gte=start)

            def done() -> bool:
                return (
                    batch_runs.filter(status__in=(RunStatus.COMPLETED, RunStatus.FAILED)).count()
                    >= runs
                )

            wait_for(done, WAIT_TIMEOUT, f"{runs} runs of {fid}", interval=0.1)
            failed = batch_runs.filter(status=RunStatus.FAILED).count()
            if failed:
                raise RuntimeError(f"{failed} runs of {fid} failed")
            last = batch_runs.aggregate(m=Max("ended_at"))["m"]
            return steps * runs / (last.timestamp() - t0)

        def raw_write(n: int) -> float:
            batch = uuid.uuid4().hex
            t0 = time.time()
            for i in range(n):
                async_task(
                    "bench.benchapp.tasks.write_mark",
                    batch,
                    q_options={"save": False, "task_name": f"raw-write {i}", "broker": broker},
                )
            marks = Mark.objects.filter(batch=batch)
            wait_for(lambda: marks.count() >= n, WAIT_TIMEOUT, f"{n} raw writing tasks", 0.1)
            last = marks.aggregate(m=Max("done_at"))["m"]
            return n / (last.timestamp() - t0)

        tests = {
            "raw": lambda: raw(args.raw),
            "raw_write": lambda: raw_write(args.raw // 2),
            "steps10": lambda: ours("bench/steps.10", STEPS_10, args.runs10, 10),
            "steps10_async": lambda: ours("bench/steps.10.async", STEPS_10_ASYNC, args.runs10, 10),
            "steps1": lambda: ours("bench/steps.1", STEPS_1, args.runs1, 1),
            # Context, not a target: one event per send, so one run per task (no batching).
            "steps1_each": lambda: ours("bench/steps.1", STEPS_1, args.runs1 // 3, 1, per_send=1),
        }
        order = list(tests)
        for r in range(args.rounds):
            shift = r % len(order)
            rates = {name: tests[name]() for name in order[shift:] + order[:shift]}
            result["rounds"].append(rates)
            print(
                f"  {args.broker} round {r + 1}/{args.rounds}: "
                + ", ".join(f"{k}={fmt_rate(v)}/s" for k, v in rates.items()),
                flush=True,
            )
            time.sleep(0.5)

        # Sleep wake-up lateness on the idle cluster, for long and short sleeps.
        result["sleep_lateness"] = {}
        for seconds in args.sleep_seconds:
            start = timezone.now()
            for i in range(args.sleepers):
                bench_client.send_sync(
                    SdkEvent(name="bench/sleep", data={"seconds": seconds, "i": i})
                )
                time.sleep(0.1)
            sleepers = FunctionRun.objects.filter(function_id=SLEEPER, created_at__gte=start)
            try:
                wait_for(
                    lambda s=sleepers: (
                        s.filter(status=RunStatus.COMPLETED).count() >= args.sleepers
                    ),
                    60,
                    "sleepers",
                )
            except RuntimeError:
                print(
                    list(sleepers.values_list("status", "wait_kind", "ready_at", "dispatched_at"))
                )
                raise
            result["sleep_lateness"][str(seconds)] = [
                (s.ended_at - s.wake_at).total_seconds()
                for s in StepRun.objects.filter(run__in=sleepers, kind=StepKind.SLEEP)
            ]
    except Exception:
        print(f"qcluster output (last lines):\n{cluster.output()}", flush=True)
        raise
    finally:
        cluster.stop()
    emit_result(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches")
    parser.add_argument("--brokers", default="orm,redis", help="comma-separated: orm,redis")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--raw", type=int, default=None, help="raw tasks per round")
    parser.add_argument("--runs10", type=int, default=None, help="10-step runs per round")
    parser.add_argument("--runs1", type=int, default=None, help="1-step runs per round")
    parser.add_argument("--sleepers", type=int, default=20)
    parser.add_argument(
        "--sleep-seconds",
        default="2,0.5,0.1",
        type=lambda v: [float(x) for x in v.split(",")],
        help="sleep durations whose wake-up lateness is measured",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timer-poll", default="", help="DJANGO_INNGEST_TIMER_POLL_SECONDS")
    parser.add_argument("--budget", default="", help="DJANGO_INNGEST_INVOCATION_BUDGET_SECONDS")
    parser.add_argument("--q-poll", default="0.05", help="Q_CLUSTER poll (ORM broker)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--broker", default="orm", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.raw = args.raw or (600 if args.quick else 2000)
    args.runs10 = args.runs10 or (40 if args.quick else 150)
    args.runs1 = args.runs1 or (150 if args.quick else 600)
    if args.child:
        child(args)
        return
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    print(
        f"steps: PostgreSQL, {args.workers} workers, {args.rounds} rounds of raw={args.raw} "
        f"tasks, {args.runs10} 10-step runs, {args.runs1} 1-step runs; cores={os.cpu_count()}",
        flush=True,
    )
    results = {}
    for broker in brokers:
        env = {
            "BENCH_DATABASE_URL": recreate_pg(DB_NAME),
            "BENCH_BROKER": broker,
            "BENCH_REDIS_URL": REDIS_URL,
            "BENCH_WORKERS": str(args.workers),
            "BENCH_Q_POLL": args.q_poll,
            "BENCH_TIMER_POLL": args.timer_poll,
            "BENCH_BUDGET": args.budget,
        }
        if broker == "redis":
            flush_redis()
        try:
            migrate(env)
            child_args = [
                "--child", "--broker", broker, "--rounds", str(args.rounds),
                "--raw", str(args.raw), "--runs10", str(args.runs10), "--runs1", str(args.runs1),
                "--sleepers", str(args.sleepers), "--workers", str(args.workers),
                "--sleep-seconds", ",".join(str(x) for x in args.sleep_seconds),
            ]  # fmt: skip
            if not args.profile:
                child_args.append("--no-profile")
            results[broker] = run_child("steps.py", child_args, env)
        finally:
            drop_pg(DB_NAME)
            if broker == "redis":
                flush_redis()
    report(results)


def report(results: dict[str, Any]) -> None:
    for broker, result in results.items():
        rounds = result["rounds"]
        print(f"\n== {broker} broker + PostgreSQL: medians of {len(rounds)} rounds ==")
        raw = median([r["raw"] for r in rounds])
        s10 = median([r["steps10"] for r in rounds])
        s1 = median([r["steps1"] for r in rounds])
        r10 = median([r["steps10"] / r["raw"] for r in rounds])
        r1 = median([r["steps1"] / r["raw"] for r in rounds])
        rw = median([r["raw_write"] for r in rounds])
        rw_ratio = median([r["raw_write"] / r["raw"] for r in rounds])
        s10a = median([r["steps10_async"] for r in rounds])
        r10a = median([r["steps10_async"] / r["steps10"] for r in rounds])
        each = median([r["steps1_each"] for r in rounds])
        each_ratio = median([r["steps1_each"] / r["raw"] for r in rounds])
        print(f"raw django-q2 no-op tasks/s     {fmt_rate(raw):>8}")
        print(
            f"raw tasks/s, one INSERT each    {fmt_rate(rw):>8}   ÷ raw = {rw_ratio:.2f} (context)"
        )
        print(
            f"10-step function steps/s        {fmt_rate(s10):>8}   ÷ raw = {r10:.2f} (target ≥ 1.0)"
        )
        print(
            f"async 10-step steps/s           {fmt_rate(s10a):>8}   ÷ sync 10-step = {r10a:.2f} "
            "(target ≥ 0.8)"
        )
        print(
            f"1-step function runs/s          {fmt_rate(s1):>8}   ÷ raw = {r1:.2f} (target ≥ 0.5)"
        )
        print(
            f"1-step runs/s, 1 event per send {fmt_rate(each):>8}   ÷ raw = {each_ratio:.2f} (context)"
        )
        for seconds, late in result["sleep_lateness"].items():
            print(
                f"sleep({seconds} s) wake-up lateness   p50 {percentile(late, 50) * 1000:.0f} ms, "
                f"p95 {percentile(late, 95) * 1000:.0f} ms, max {max(late) * 1000:.0f} ms "
                f"(n={len(late)})"
            )
        for label, prof in result.get("profile", {}).items():
            print(
                f"in-process {label}: advance = {prof['advance_queries']} queries, "
                f"{prof['advance_transactions']} transactions, "
                f"{prof['advance_ms_in_process']:.1f} ms; send = {prof['send_queries']} queries; "
                f"{prof['by_kind']}"
            )


if __name__ == "__main__":
    main()
