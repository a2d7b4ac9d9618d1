"""Cancel latency over HTTP with a real qcluster (ORM broker, example-like settings).

Each round starts K runs of ``bench-cancellable`` (``Cancel(event="bench/cancel.stop",
match="data.id")``, then a one-hour ``step.sleep``), waits until all are asleep, then for each
run POSTs its cancel event to ``/e/<key>`` (bench/serve.py: Django's threaded server with
keep-alive) and measures, from the moment the POST returned:

- ``cancelled``: until the run is Cancelled. ``send_events`` cancels matching runs inside the
  request, so this is ~0 (the run's ``ended_at`` precedes the response; shown as 0);
- ``cleanup``: until the cleanup run (``bench-cleanup``, triggered by
  ``inngest/function.cancelled`` with ``if`` on the function id) is Completed, from its
  ``ended_at``: the system event, a run, a django-q2 enqueue, the pusher, a worker, one step.

``sequential``: one cancel at a time, 0.2 s apart, on an otherwise idle cluster. ``burst``: K
cancels POSTed back to back. Target: p95 ≤ 1 s (sequential, default settings).

    .venv/bin/python bench/cancel_latency.py [--quick] [--db postgres|sqlite|sqlite,postgres]
                                             [--runs 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    EVENT_KEY,
    Server,
    db_env,
    drop_db,
    emit_result,
    migrate,
    percentile,
    run_child,
    setup_django,
)

DB_NAME = "bench_inngest_cancel"


def child(args: argparse.Namespace) -> None:
    setup_django({})
    from django.utils import timezone

    from bench.benchapp.inngest_functions import CANCELLABLE, CLEANUP
    from django_inngest.models import FunctionRun, RunStatus, WaitKind
    from tests.qcluster import QCluster

    def wait_for(condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.01)

    cluster = QCluster("bench.settings")
    server = Server({})
    client = server.client()
    api = f"/e/{EVENT_KEY}"
    result: dict[str, list[dict[str, float]]] = {"sequential": [], "burst": []}
    try:
        cluster.wait_ready(workers=2, timeout=120)
        time.sleep(1.0)

        def start_runs(tag: str) -> list[tuple[str, str]]:
            ids = [f"{tag}-{i}" for i in range(args.runs)]
            since = timezone.now()
            client.post_json(api, [{"name": "bench/cancel.start", "data": {"id": i}} for i in ids])
            runs = FunctionRun.objects.filter(function_id=CANCELLABLE, created_at__gte=since)

            def asleep() -> bool:
                return runs.filter(wait_kind=WaitKind.SLEEP).count() >= args.runs

            wait_for(asleep, 60, f"{args.runs} runs asleep")
            by_id = {r.event.data["id"]: r.run_id for r in runs.select_related("event")}
            return [(i, by_id[i]) for i in ids]

        def measure(run_id: str, returned: float) -> dict[str, float]:
            cleanup = FunctionRun.objects.filter(
                function_id=CLEANUP, event__external_id=run_id, status=RunStatus.COMPLETED
            )

            def cleaned() -> bool:
                return cleanup.exists()

            wait_for(cleaned, 30, f"the cleanup of {run_id}")
            run = FunctionRun.objects.get(pk=run_id)
            assert run.status == RunStatus.CANCELLED, run.status
            ended = cleanup.get().ended_at
            assert run.ended_at is not None and ended is not None
            return {
                "cancelled": max(0.0, run.ended_at.timestamp() - returned),
                "cancelled_before_return": float(run.ended_at.timestamp() <= returned),
                "cleanup": ended.timestamp() - returned,
            }

        def cancel(event_id: str) -> tuple[float, float]:
            sent = time.time()
            client.post_json(api, {"name": "bench/cancel.stop", "data": {"id": event_id}})
            return sent, time.time()

        for r in range(args.rounds):
            samples = []
            for event_id, run_id in start_runs(f"s{r}"):
                sent, returned = cancel(event_id)
                sample = measure(run_id, returned)
                sample["post"] = returned - sent
                samples.append(sample)
                time.sleep(0.2)
            result["sequential"].extend(samples)
            burst = [(run_id, *cancel(event_id)) for event_id, run_id in start_runs(f"b{r}")]
            result["burst"].extend(
                {**measure(run_id, returned), "post": returned - sent}
                for run_id, sent, returned in burst
            )
            seq = [s["cleanup"] for s in samples]
            print(
                f"  {args.db} round {r + 1}/{args.rounds}: sequential cleanup p50 "
                f"{percentile(seq, 50) * 1000:.0f} ms, p95 {percentile(seq, 95) * 1000:.0f} ms",
                flush=True,
            )
    finally:
        client.close()
        server.stop()
        cluster.stop()
    emit_result(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and rounds")
    parser.add_argument("--db", default="postgres", help="comma-separated: sqlite,postgres")
    parser.add_argument("--runs", type=int, default=0, help="runs cancelled per round and mode")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.runs = args.runs or (10 if args.quick else 20)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.child:
        child(args)
        return
    results = {}
    for db in [d.strip() for d in args.db.split(",") if d.strip()]:
        env = db_env(db, DB_NAME)
        try:
            migrate(env)
            child_args = ["--child", "--db", db, "--runs", str(args.runs)]
            results[db] = run_child(
                "cancel_latency.py", [*child_args, "--rounds", str(args.rounds)], env
            )
        finally:
            drop_db(db, DB_NAME)
    for db, result in results.items():
        print(f"\n== {db}, ORM broker, 2 workers: {args.rounds} rounds x {args.runs} runs ==")
        for mode in ("sequential", "burst"):
            samples = result[mode]
            line = []
            for key in ("post", "cancelled", "cleanup"):
                values = [s[key] for s in samples]
                line.append(
                    f"{key} p50 {percentile(values, 50) * 1000:.0f} ms / "
                    f"p95 {percentile(values, 95) * 1000:.0f} ms"
                )
            before = sum(s["cancelled_before_return"] for s in samples) / len(samples)
            print(f"{mode:<11} " + "; ".join(line))
            print(f"{'':<11} runs already Cancelled when the POST returned: {before:.0%}")
        seq95 = percentile([s["cleanup"] for s in result["sequential"]], 95)
        print(f"target: sequential cleanup p95 ≤ 1000 ms: {'met' if seq95 <= 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
