"""Retention at 1M old runs: does pruning stall the workers or the event API?

    .venv/bin/python bench/prune.py [--rows 1000000] [--rounds 3] [--runs10 1500] [--posts 1000]

Fills ``bench_inngest_prune`` (PostgreSQL) with ``--rows`` runs that ended 31 to 45 days ago,
each with its event and two steps, plus as many events that started nothing (like
``inngest/function.finished``): all of it past the default 30-day retention. Then, with a real
``qcluster`` (2 workers, ORM broker) and the HTTP server, each round measures in turn:

- ``off``: retention disabled (``DJANGO_INNGEST_RETENTION=None``): the baseline;
- ``workers``: the default retention, so every worker's housekeeping prunes a budgeted slice of
  the backlog every 5 s (one pruner at a time: an advisory lock);
- ``command`` (last round only, it may clear the backlog): ``manage.py inngest_prune`` next to
  the workers, with its default pause (as long as each batch took);
- ``flat_out`` (with ``--modes``): ``inngest_prune --pause 0``, the worst case.

Each phase measures: steps/s of ``--runs10`` 10-step runs sent 100 per ``send_sync`` (first send
to last end), and the latency of ``--posts`` single-event ``POST /e/<key>`` over one keep-alive
connection (p50, p95), plus how many old runs were pruned during the phase. Ratios are each
pruning phase against the ``off`` phase of the same round. Goal: >= 0.8 for both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    Server,
    child_env,
    drop_pg,
    fmt_rate,
    median,
    migrate,
    percentile,
    pg_url,
    recreate_pg,
    setup_django,
)

DB_NAME = "bench_inngest_prune"
ULID = "upper(lpad(to_hex(i), 26, '0'))"  # sorts like a ULID minted long ago (leading zeros)


def fill(rows: int) -> dict[str, str]:
    import psycopg

    env = {"BENCH_DATABASE_URL": recreate_pg(DB_NAME), "BENCH_BROKER": "orm"}
    migrate(env)
    age = f"now() - interval '31 days' - interval '14 days' * (1 - i::float / {rows})"
    statements = {
        "functions": """
            INSERT INTO django_inngest_functionregistration
                (function_id, app_id, fn_id, name, is_active, config, created_at, updated_at)
            VALUES ('bench-old-fn', 'bench', 'old-fn', 'Old', false, '{}', now(), now())""",
        "events": f"""
            INSERT INTO django_inngest_event
                (internal_id, external_id, name, data, "user", ts, v, received_at, is_duplicate)
            SELECT {ULID}, '', CASE WHEN i <= {rows} THEN 'old/started'
                                    ELSE 'inngest/function.finished' END,
                   jsonb_build_object('n', i), '{{}}', 0, '', {age}, false
            FROM generate_series(1, {2 * rows}) AS i""",
        "runs": f"""
            INSERT INTO django_inngest_functionrun
                (run_id, function_id, event_id, status, wait_kind, ready_at, dispatched_at,
                 lease_owner, lease_expires_at, attempt, created_at, started_at, ended_at,
                 output, error, cancel_source, cancel_reason, cancellation_id,
                 cancelled_signal_sent, parent_run_id, parent_step_id, original_run_id,
                 cancel_actor, cancel_event_id, priority, gated, gates, cron)
            SELECT {ULID}, 'bench-old-fn', {ULID},
                   CASE WHEN i % 20 = 0 THEN 'Failed' WHEN i % 33 = 0 THEN 'Cancelled'
                        ELSE 'Completed' END,
                   '', NULL, NULL, '', NULL, 0, {age}, {age}, {age} + interval '2 seconds',
                   '{{"ok": true}}', NULL, '', '', NULL, true, NULL, '', '', '', NULL, 0, false,
                   '{{}}', ''
            FROM generate_series(1, {rows}) AS i""",
        "steps": """
            INSERT INTO django_inngest_steprun
                (run_id, step_id, position, kind, status, attempts, attempt_log, output, error,
                 started_at, ended_at, wake_at, matched_event_id, display_name)
            SELECT r.run_id, k.step_id, k.position, 'run', 'Completed', 1, '[]', '1', NULL,
                   r.started_at, r.ended_at, NULL, NULL, ''
            FROM django_inngest_functionrun r
            CROSS JOIN (VALUES ('a', 0), ('b', 1)) AS k(step_id, position)""",
    }
    with psycopg.connect(pg_url(DB_NAME), autocommit=True) as conn:
        print(f"filling {DB_NAME}: {rows:,} old runs, {2 * rows:,} steps, {2 * rows:,} events")
        for name, statement in statements.items():
            started = time.perf_counter()
            conn.execute(statement)
            print(f"  {name}: {time.perf_counter() - started:.1f}s", flush=True)
        conn.execute("VACUUM ANALYZE")
    return env


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs10", type=int, default=1500)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--modes",
        default="",
        help="comma-separated modes for every round (off first), e.g. off,command,flat_out; "
        "default: off,workers, and command in the last round",
    )
    args = parser.parse_args()
    env = {**fill(args.rows), "BENCH_WORKERS": str(args.workers)}
    setup_django(env)
    try:
        results = measure(args, env)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_pg(DB_NAME)
    report(results)


def measure(args: argparse.Namespace, env: dict[str, str]) -> list[dict[str, Any]]:
    from django.db.models import Max
    from django.utils import timezone

    from bench.benchapp.inngest_functions import STEPS_10, bench_client
    from django_inngest import Event as SdkEvent
    from django_inngest.models import FunctionRun, RunStatus
    from tests.qcluster import QCluster

    old_runs = FunctionRun.objects.filter(function_id="bench-old-fn")

    def steps_per_second() -> float:
        t0, start = time.time(), timezone.now()
        for sent in range(0, args.runs10, 100):
            batch = min(100, args.runs10 - sent)
            bench_client.send_sync(
                [SdkEvent(name="bench/steps.10", data={"i": sent + i}) for i in range(batch)]
            )
        runs = FunctionRun.objects.filter(function_id=STEPS_10, created_at__gte=start)
        deadline = time.monotonic() + 600
        while runs.filter(status=RunStatus.COMPLETED).count() < args.runs10:
            if time.monotonic() > deadline:
                raise RuntimeError("the 10-step runs did not finish")
            time.sleep(0.1)
        last = runs.aggregate(m=Max("ended_at"))["m"]
        return 10 * args.runs10 / (last.timestamp() - t0)

    def post_latencies(server: Server) -> list[float]:
        client = server.client()
        samples = []
        try:
            for i in range(args.posts):
                started = time.perf_counter()
                client.post_json("/e/bench-event-key", {"name": "bench/plain", "data": {"i": i}})
                samples.append((time.perf_counter() - started) * 1000)
        finally:
            client.close()
        return samples

    server = Server(env)
    results: list[dict[str, Any]] = []
    try:
        for round_number in range(args.rounds):
            modes = ["off", "workers"] + (["command"] if round_number == args.rounds - 1 else [])
            if args.modes:
                modes = [m.strip() for m in args.modes.split(",") if m.strip()]
            for mode in modes:
                retention = "none" if mode == "off" else ""
                cluster = QCluster("bench.settings", env={**env, "BENCH_RETENTION": retention})
                command = None
                try:
                    cluster.wait_ready(workers=args.workers, timeout=120)
                    if mode in ("command", "flat_out"):
                        pause = ["--pause", "0"] if mode == "flat_out" else []
                        command = subprocess.Popen(
                            [sys.executable, "-m", "django", "inngest_prune", *pause],
                            cwd=ROOT,
                            env=child_env({**env, "BENCH_RETENTION": ""}),
                            stdout=subprocess.DEVNULL,
                        )
                    time.sleep(2.0)  # registrations synced, the first housekeeping passes run
                    before, started = old_runs.count(), time.monotonic()
                    steps = steps_per_second()
                    posts = post_latencies(server)
                    elapsed = time.monotonic() - started
                    after = old_runs.count()
                finally:
                    if command is not None:
                        command.terminate()
                        command.wait(timeout=30)
                    cluster.stop()
                row = {
                    "round": round_number + 1,
                    "mode": mode,
                    "steps_per_s": steps,
                    "post_p50_ms": percentile(posts, 50),
                    "post_p95_ms": percentile(posts, 95),
                    "pruned_runs": before - after,
                    "pruned_per_s": (before - after) / elapsed,
                    "backlog": after,
                    "load": load(),
                }
                results.append(row)
                print(
                    f"  round {row['round']} {mode:8} steps/s={fmt_rate(steps)} "
                    f"POST p50={row['post_p50_ms']:.1f} p95={row['post_p95_ms']:.1f} ms "
                    f"pruned={row['pruned_runs']:,} ({row['pruned_per_s']:.0f}/s) "
                    f"backlog={after:,} load={row['load']}",
                    flush=True,
                )
    finally:
        server.stop()
    return results


def report(results: list[dict[str, Any]]) -> None:
    baseline = {r["round"]: r for r in results if r["mode"] == "off"}
    print("\n== pruning against no pruning, same round ==")
    print("mode      round  steps/s ratio   POST p95 ms (off)  p95 ratio (off/with)  pruned/s")
    ratios: dict[str, list[tuple[float, float]]] = {}
    for row in results:
        if row["mode"] == "off":
            continue
        off = baseline[row["round"]]
        steps_ratio = row["steps_per_s"] / off["steps_per_s"]
        # Latency: the ratio is baseline / with-pruning, so that >= 0.8 means "not much slower".
        post_ratio = off["post_p95_ms"] / row["post_p95_ms"]
        ratios.setdefault(row["mode"], []).append((steps_ratio, post_ratio))
        print(
            f"{row['mode']:8}  {row['round']:>5}  {steps_ratio:13.2f}   "
            f"{row['post_p95_ms']:6.1f} ({off['post_p95_ms']:.1f})  {post_ratio:20.2f}  "
            f"{row['pruned_per_s']:8.0f}"
        )
    for mode, values in ratios.items():
        print(
            f"median {mode}: steps ratio {median([v[0] for v in values]):.2f}, "
            f"POST p95 ratio {median([v[1] for v in values]):.2f} (goal >= 0.8)"
        )


if __name__ == "__main__":
    main()
