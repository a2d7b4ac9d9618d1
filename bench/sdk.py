"""Steps of a function written with the official SDK (inngest-py, served over HTTP by a real
multi-threaded WSGI server on this machine) against the same function written in-process, on
one qcluster, in the same run.

A child process creates a fresh PostgreSQL database, starts gunicorn (``gthread``: 2 processes
of 4 threads; ``--server django``: Django's threaded server, ``bench/serve.py``) serving
``bench/sdkapp.py``'s app with bench/settings.py, syncs it in-band,
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
    DATA_DIR,
    ROOT,
    Server,
    child_env,
    drop_pg,
    emit_result,
    fmt_rate,
    free_port,
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


class Gunicorn:
    """gunicorn serving this project (bench.wsgi), threaded, on a free port."""

    def __init__(self, env: dict[str, str], workers: int = 2, threads: int = 4) -> None:
        import socket
        import subprocess

        self.port = free_port()
        self.log = open(DATA_DIR / f"gunicorn-{self.port}.log", "w")  # noqa: SIM115
        command = [sys.executable, "-m", "gunicorn", "bench.wsgi:application"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--worker-class", "gthread"]
        command += ["--workers", str(workers), "--threads", str(threads), "--keep-alive", "60"]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=child_env(env),
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not start; see {self.log.name}")

    def stop(self) -> None:
        import signal

        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.close()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every live process in a process group (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


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
    from django_inngest.models import FunctionRun, RunStatus
    from django_inngest.sdk_apps.sync import request_sync
    from tests.qcluster import QCluster

    server: Gunicorn | Server = (
        Gunicorn(dict(os.environ)) if args.server == "gunicorn" else Server(dict(os.environ))
    )
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

            workers_group = os.getpgid(cluster.process.pid)
            app_group = os.getpgid(server.process.pid)
            order = [("local", LOCAL), ("sdk", SDK)]
            cpu: dict[str, list[tuple[float, float]]] = {"local": [], "sdk": []}
            for r in range(args.rounds):
                rates = {}
                for label, (name, fid) in order if r % 2 == 0 else order[::-1]:
                    before = group_cpu_seconds(workers_group), group_cpu_seconds(app_group)
                    rates[label] = steps_per_second(name, fid)
                    after = group_cpu_seconds(workers_group), group_cpu_seconds(app_group)
                    steps = 10 * args.runs
                    cpu[label].append(
                        ((after[0] - before[0]) / steps, (after[1] - before[1]) / steps)
                    )
                    time.sleep(0.5)
                result["rounds"].append(rates)
                print(
                    f"  round {r + 1}/{args.rounds}: local={fmt_rate(rates['local'])} steps/s, "
                    f"sdk={fmt_rate(rates['sdk'])} steps/s, "
                    f"ratio={rates['sdk'] / rates['local']:.2f}",
                    flush=True,
                )
            result["cpu_ms_per_step"] = {
                label: {
                    "workers": median([c[0] for c in rows]) * 1000,
                    "sdk_app": median([c[1] for c in rows]) * 1000,
                }
                for label, rows in cpu.items()
            }
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
    parser.add_argument(
        "--server", choices=("gunicorn", "django"), default="gunicorn", help="serves the SDK app"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.runs = args.runs or (30 if args.quick else 100)
    if args.child:
        child(args)
        return
    print(
        f"sdk: PostgreSQL, ORM broker, {args.workers} workers, {args.rounds} rounds of "
        f"{args.runs} 10-step runs each; the SDK app on {args.server}; cores={os.cpu_count()}",
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
        child_args += ["--workers", str(args.workers), "--server", args.server]
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
    cpu = result.get("cpu_ms_per_step")
    if cpu:
        print("\nCPU per step (median of rounds; the database and this sender not counted):")
        for label, parts in cpu.items():
            print(
                f"  {label:>5}: workers {parts['workers']:.2f} ms, "
                f"SDK app server {parts['sdk_app']:.2f} ms"
            )
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
