"""Steps of a function written with the official SDK (inngest-py, served over HTTP by a real
multi-threaded WSGI server on this machine) against the same function written in-process, on
one qcluster, in the same run.

A child process creates a fresh PostgreSQL database, starts ``bench/serve.py`` (Django's
threaded server, ``TCP_NODELAY``) serving ``bench/sdkapp.py``'s app, syncs it in-band,
starts ``manage.py qcluster`` (ORM broker, example_project's Q_CLUSTER) and, each round, in
alternating order:

- ``local``: R runs of ``bench-steps-10`` (10 no-op ``ctx.step.run``), sent 100 per send;
- ``sdk``: R runs of ``sdkbench-steps-10``, the same function written with inngest-py.

steps/s = 10·R / (last run's ``ended_at`` - first send). The ratio sdk ÷ local is the median
of the per-round ratios; the target is >= 0.3. The SDK app's server shares the 2 cores with
the workers and the database, as it would on one machine.

Before the cluster starts, 5 runs of each are advanced in this process, to show where the time
goes: for the SDK function, per call, the round trip, the time the SDK itself reports
(``Server-Timing: comm_handler``) and our own time; and cProfile's top functions on our side
(``--no-profile`` skips it).

    .venv/bin/python bench/sdk.py [--quick] [--rounds 3] [--runs 60] [--workers 2]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Server,
    drop_pg,
    emit_result,
    fmt_rate,
    median,
    migrate,
    recreate_pg,
    run_child,
    setup_django,
)

DB_NAME = "bench_inngest_sdk"
WAIT_TIMEOUT = 600.0
LOCAL = ("bench/steps.10", "bench-steps-10")
SDK = ("sdkbench/steps.10", "sdkbench-steps-10")


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def profile(runs: int = 5) -> dict[str, Any]:
    """Advance runs of each function in this process: where an SDK run's time goes."""
    from django_inngest import Event, Inngest
    from django_inngest.engine import remote as remote_turn
    from django_inngest.engine import remote_calls, remote_ops, worker
    from django_inngest.models import FunctionRun

    sender = Inngest(app_id="bench-sdk")
    calls: list[float] = []  # each call's round trip
    sdk_handler: list[float] = []  # what the SDK reports: Server-Timing comm_handler
    real_send, real_transport = remote_calls.send, remote_calls.transport

    class Recording:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def request(self, *args: Any, **kwargs: Any) -> Any:
            response = self.inner.request(*args, **kwargs)
            timing = response.headers.get("server-timing", "")
            found = re.search(r"comm_handler;dur=([\d.]+)", timing)
            sdk_handler.append(float(found.group(1)) / 1000 if found else 0.0)
            return response

    def timed_send(prepared: Any) -> Any:
        start = time.perf_counter()
        answer = real_send(prepared)
        calls.append(time.perf_counter() - start)
        return answer

    remote_turn.send = remote_ops.send = timed_send  # type: ignore[assignment]
    remote_calls.transport = lambda: Recording(real_transport())  # type: ignore[assignment]
    out: dict[str, Any] = {}
    profiler = cProfile.Profile()
    try:
        for label, (name, fid) in (("local", LOCAL), ("sdk", SDK)):
            walls = []
            for i in range(runs + 1):  # the first warms caches and connections
                sender.send_sync(Event(name=name, data={"i": i}))
                run = FunctionRun.objects.filter(function_id=fid).order_by("-created_at").first()
                assert run is not None
                if i == 0:
                    worker.advance(run.run_id)
                    calls.clear()
                    sdk_handler.clear()
                    continue
                start = time.perf_counter()
                if label == "sdk":
                    profiler.enable()
                outcome = worker.advance(run.run_id)
                if label == "sdk":
                    profiler.disable()
                walls.append(time.perf_counter() - start)
                assert outcome == "completed", outcome
            out[label] = {"run_ms": median(walls) * 1000}
    finally:
        remote_turn.send = remote_ops.send = real_send  # type: ignore[assignment]
        remote_calls.transport = real_transport  # type: ignore[assignment]
    per_run = len(calls) / runs
    round_trip = sum(calls) / len(calls)
    handler = sum(sdk_handler) / len(sdk_handler)
    run_s = out["sdk"]["run_ms"] / 1000
    out["sdk"].update(
        calls_per_run=per_run,
        call_ms=round_trip * 1000,
        sdk_handler_ms=handler * 1000,
        http_and_server_ms=(round_trip - handler) * 1000,
        ours_ms=(run_s / per_run - round_trip) * 1000,
    )
    out["sdk"]["profile_shares"] = _shares(profiler)
    text = StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(
        "django_inngest|jcs", 14
    )
    out["sdk"]["top_cumulative"] = _top(text.getvalue())
    return out


#: Where an SDK run's time goes, by cProfile's cumulative time of these (file, function).
_PARTS = {
    "HTTP call to the app (its Django and handler included)": ("sdk/transport.py", "request"),
    "database queries (claims, step commits, the run's end)": (
        "django/db/backends/utils.py",
        "_execute",
    ),
    "database commits": ("psycopg/connection.py", "commit"),
    "JCS canonicalisation of request bodies": ("sdk/signing.py", "canonical_json"),
    "parsing and verifying answers": ("sdk/responses.py", "parse_call_response"),
}


def _shares(profiler: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(v[3] for k, v in stats.items() if k[2] == "advance" and "worker.py" in k[0])
    shares = {
        label: sum(v[3] for k, v in stats.items() if k[0].endswith(path) and k[2] == func) / total
        for label, (path, func) in _PARTS.items()
    }
    shares["verifying answer signatures"] = (
        sum(v[3] for k, v in stats.items() if k[2] == "verify_response") / total
    )
    shares["the rest of our Python"] = 1 - sum(shares.values())
    return shares


def _top(report: str) -> list[str]:
    lines = [line for line in report.splitlines() if re.match(r"\s+\d+(/\d+)?\s+\d", line)]
    return [re.sub(r"\s+", " ", line.strip()) for line in lines]


def child(args: argparse.Namespace) -> None:
    setup_django({})
    from django.db.models import Max
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.models import OrmQ

    from django_inngest import Event, Inngest
    from django_inngest.app_sync import request_sync
    from django_inngest.models import FunctionRun, RunStatus
    from tests.qcluster import QCluster

    server = Server(dict(os.environ))
    result: dict[str, Any] = {"rounds": []}
    try:
        outcome = request_sync(f"http://127.0.0.1:{server.port}/api/inngest")
        if not outcome.ok:
            raise RuntimeError(f"sync failed: {outcome.message}")
        if args.profile:
            result["profile"] = profile()
        get_broker().purge_queue()
        OrmQ.objects.all().delete()
        cluster = QCluster("bench.settings")
        try:
            cluster.wait_ready(workers=args.workers, timeout=120)
            time.sleep(1.0)
            sender = Inngest(app_id="bench-sdk")

            def steps_per_second(name: str, fid: str) -> float:
                t0 = time.time()
                start = timezone.now()
                sent = 0
                while sent < args.runs:
                    batch = min(100, args.runs - sent)
                    sender.send_sync([Event(name=name, data={"i": sent + i}) for i in range(batch)])
                    sent += batch
                runs = FunctionRun.objects.filter(function_id=fid, created_at__gte=start)
                ended = (RunStatus.COMPLETED, RunStatus.FAILED)
                wait_for(
                    lambda: runs.filter(status__in=ended).count() >= args.runs,
                    WAIT_TIMEOUT,
                    f"{args.runs} runs of {fid}",
                )
                failed = runs.filter(status=RunStatus.FAILED).count()
                if failed:
                    raise RuntimeError(f"{failed} runs of {fid} failed")
                last = runs.aggregate(m=Max("ended_at"))["m"]
                return 10 * args.runs / (last.timestamp() - t0)

            order = [("local", LOCAL), ("sdk", SDK)]
            for r in range(args.rounds):
                rates = {}
                for label, (name, fid) in order if r % 2 == 0 else order[::-1]:
                    rates[label] = steps_per_second(name, fid)
                    time.sleep(0.5)
                result["rounds"].append(rates)
                print(
                    f"  round {r + 1}/{args.rounds}: local={fmt_rate(rates['local'])} steps/s, "
                    f"sdk={fmt_rate(rates['sdk'])} steps/s, "
                    f"ratio={rates['sdk'] / rates['local']:.2f}",
                    flush=True,
                )
        except Exception:
            print(f"qcluster output (last lines):\n{cluster.output()}", flush=True)
            raise
        finally:
            cluster.stop()
    finally:
        server.stop()
    emit_result(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=None, help="runs per variant per round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.runs = args.runs or (30 if args.quick else 100)
    if args.child:
        child(args)
        return
    print(
        f"sdk: PostgreSQL, ORM broker, {args.workers} workers, {args.rounds} rounds of "
        f"{args.runs} 10-step runs each; cores={os.cpu_count()}",
        flush=True,
    )
    env = {
        "BENCH_DATABASE_URL": recreate_pg(DB_NAME),
        "BENCH_BROKER": "orm",
        "BENCH_WORKERS": str(args.workers),
        "BENCH_SDK_APP": "1",
    }
    try:
        migrate(env)
        child_args = ["--child", "--rounds", str(args.rounds), "--runs", str(args.runs)]
        child_args += ["--workers", str(args.workers)]
        if not args.profile:
            child_args.append("--no-profile")
        result = run_child("sdk.py", child_args, env)
    finally:
        drop_pg(DB_NAME)
    report(result)


def report(result: dict[str, Any]) -> None:
    rounds = result["rounds"]
    local = median([r["local"] for r in rounds])
    sdk = median([r["sdk"] for r in rounds])
    ratio = median([r["sdk"] / r["local"] for r in rounds])
    print(f"\n== medians of {len(rounds)} rounds ==")
    print(f"in-process 10-step steps/s   {fmt_rate(local):>8}")
    print(f"SDK-served 10-step steps/s   {fmt_rate(sdk):>8}   ratio {ratio:.2f} (target >= 0.3)")
    prof = result.get("profile")
    if prof:
        s = prof["sdk"]
        print("\n== one run advanced in-process (median of 5) ==")
        print(f"in-process run: {prof['local']['run_ms']:.1f} ms")
        print(
            f"SDK-served run: {s['run_ms']:.1f} ms = {s['calls_per_run']:.0f} calls of "
            f"{s['call_ms']:.2f} ms round trip + {s['ours_ms']:.2f} ms ours per call"
        )
        print(
            f"  per call: the SDK's handler {s['sdk_handler_ms']:.2f} ms "
            f"(its Server-Timing), HTTP + the app's Django {s['http_and_server_ms']:.2f} ms, "
            f"ours (build, sign, verify, commit) {s['ours_ms']:.2f} ms"
        )
        print("  shares of an SDK run's time (cProfile, cumulative):")
        for label, share in s["profile_shares"].items():
            print(f"    {share:6.1%}  {label}")
        print("  our functions by cumulative time (cProfile):")
        for line in s["top_cumulative"]:
            print(f"    {line}")


if __name__ == "__main__":
    main()
