"""Event ingest throughput (events/s): the HTTP event API, ``client.send_sync``, and the raw ORM.

Variants, on SQLite and on PostgreSQL, each round in a fresh child process (rounds interleave
the databases; variants rotate order inside a round):

- ``orm_create_1`` / ``orm_bulk_100``: the baseline, ``Event`` rows written with the plain ORM
  (one ``save()`` per event, or one ``bulk_create`` per 100).
- ``send_sync_1`` / ``send_sync_100``: ``Inngest.send_sync`` with 1 or 100 events per call.
- ``http_raw_1`` / ``http_raw_100``: the HTTP baseline, a bare Django view (same server,
  middleware and connection) that parses the JSON and writes the rows with the plain ORM.
- ``http_1`` / ``http_100``: ``POST /e/<key>`` with 1 or 100 events per request.
- ``*_trig``: every event starts one run (a run row, a cancel listener and a django-q2 enqueue
  through the ORM broker; no cluster runs, so the runs stay queued).

HTTP runs against ``manage.py runserver --noreload`` (threaded WSGI, HTTP/1.1 keep-alive) with
one keep-alive ``http.client`` connection sending requests back to back.

    .venv/bin/python bench/ingest.py [--quick] [--db sqlite,postgres] [--rounds 3]
                                     [--n1 400] [--n100 4000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    EVENT_KEY,
    Server,
    db_env,
    drop_db,
    emit_result,
    fmt_rate,
    median,
    migrate,
    run_child,
    setup_django,
)

DB_NAME = "bench_inngest_ingest"
PLAIN = "bench/ingest.plain"
TRIGGERING = "bench/ingest.triggered"
VARIANTS = (
    "orm_create_1", "send_sync_1", "http_raw_1", "http_1", "send_sync_1_trig", "http_1_trig",
    "orm_bulk_100", "send_sync_100", "http_raw_100", "http_100", "send_sync_100_trig",
)  # fmt: skip
#: variant -> the baselines it is compared with.
BASELINES = {
    "send_sync_1": ("orm_create_1",),
    "http_raw_1": ("orm_create_1",),
    "http_1": ("orm_create_1", "http_raw_1"),
    "send_sync_1_trig": ("orm_create_1", "send_sync_1"),
    "http_1_trig": ("orm_create_1", "http_1"),
    "send_sync_100": ("orm_bulk_100",),
    "http_raw_100": ("orm_bulk_100",),
    "http_100": ("orm_bulk_100", "http_raw_100"),
    "send_sync_100_trig": ("orm_bulk_100", "send_sync_100"),
}


def payload(name: str, i: int) -> dict[str, Any]:
    return {
        "name": name,
        "data": {"id": str(uuid.uuid4()), "email": f"user{i}@example.com", "plan": "pro", "n": i},
        "user": {"external_id": f"u{i}"},
    }


def child(args: argparse.Namespace) -> None:
    setup_django({})
    from django.db import connection
    from django.utils import timezone

    from bench.benchapp.inngest_functions import bench_client
    from bench.benchapp.views import event_row
    from django_inngest import Event as SdkEvent
    from django_inngest.models import Event, FunctionRun

    def clear() -> None:
        tables = [
            "django_inngest_listener",
            "django_inngest_steprun",
            "django_inngest_functionrun",
            "django_inngest_event",
            "django_q_ormq",
        ]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
            else:
                for table in tables:
                    cursor.execute(f"DELETE FROM {table}")

    n1, n100 = args.n1, args.n100
    batches = max(1, n100 // 100)

    def sdk(p: dict[str, Any]) -> SdkEvent:
        return SdkEvent(name=p["name"], data=p["data"], user=p["user"])

    server = Server({})
    client = server.client()
    try:

        def orm_create_1() -> int:
            for i in range(n1):
                now = timezone.now()
                event_row(payload(PLAIN, i), now, int(time.time() * 1000)).save(force_insert=True)
            return n1

        def orm_bulk_100() -> int:
            for b in range(batches):
                now, now_ms = timezone.now(), int(time.time() * 1000)
                Event.objects.bulk_create(
                    [event_row(payload(PLAIN, b * 100 + i), now, now_ms) for i in range(100)]
                )
            return batches * 100

        def send_1(name: str) -> int:
            for i in range(n1):
                bench_client.send_sync(sdk(payload(name, i)))
            return n1

        def send_100(name: str) -> int:
            for b in range(batches):
                bench_client.send_sync([sdk(payload(name, b * 100 + i)) for i in range(100)])
            return batches * 100

        def http_1(path: str, name: str) -> int:
            for i in range(n1):
                client.post_json(path, payload(name, i))
            return n1

        def http_100(path: str, name: str) -> int:
            for b in range(batches):
                client.post_json(path, [payload(name, b * 100 + i) for i in range(100)])
            return batches * 100

        api = f"/e/{EVENT_KEY}"
        raw = "/bench/raw-events"
        runners = {
            "orm_create_1": orm_create_1,
            "send_sync_1": lambda: send_1(PLAIN),
            "http_raw_1": lambda: http_1(raw, PLAIN),
            "http_1": lambda: http_1(api, PLAIN),
            "send_sync_1_trig": lambda: send_1(TRIGGERING),
            "http_1_trig": lambda: http_1(api, TRIGGERING),
            "orm_bulk_100": orm_bulk_100,
            "send_sync_100": lambda: send_100(PLAIN),
            "http_raw_100": lambda: http_100(raw, PLAIN),
            "http_100": lambda: http_100(api, PLAIN),
            "send_sync_100_trig": lambda: send_100(TRIGGERING),
        }
        # Warm up: connections, CEL programs, registrations, the server's first request.
        client.post_json(api, payload(TRIGGERING, 0))
        client.post_json(raw, payload(PLAIN, 0))
        bench_client.send_sync(sdk(payload(TRIGGERING, 0)))
        order = list(VARIANTS)
        shift = args.round % len(order)
        order = order[shift:] + order[:shift]
        rates: dict[str, float] = {}
        for name in order:
            clear()
            start = time.perf_counter()
            count = runners[name]()
            rates[name] = count / (time.perf_counter() - start)
            if name.endswith("_trig"):  # every triggering event started one run
                rates[f"_runs_per_event_{name}"] = FunctionRun.objects.count() / count
    finally:
        client.close()
        server.stop()
    emit_result(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events per variant")
    parser.add_argument("--db", default="sqlite,postgres", help="comma-separated: sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n1", type=int, default=None, help="events for 1-per-call variants")
    parser.add_argument("--n100", type=int, default=None, help="events for 100-per-call variants")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.n1 = args.n1 or (150 if args.quick else 400)
    args.n100 = args.n100 or (1500 if args.quick else 4000)
    if args.child:
        child(args)
        return
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    envs = {}
    for db in dbs:
        envs[db] = db_env(db, DB_NAME)
        migrate(envs[db])
    print(
        f"ingest: {args.rounds} rounds, {args.n1} events (1 per call), "
        f"{args.n100} events (100 per call), cores={os.cpu_count()}",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {db: [] for db in dbs}
    try:
        for r in range(args.rounds):
            for db in dbs:
                child_args = [
                    "--child",
                    "--round",
                    str(r),
                    "--n1",
                    str(args.n1),
                    "--n100",
                    str(args.n100),
                ]
                results[db].append(run_child("ingest.py", child_args, envs[db]))
                print(f"round {r + 1}/{args.rounds} {db}: done", flush=True)
    finally:
        for db in dbs:
            drop_db(db, DB_NAME)
    report(dbs, results)


def report(dbs: list[str], results: dict[str, list[dict[str, float]]]) -> None:
    for db in dbs:
        rounds = results[db]
        print(f"\n== {db}: events/s, median of {len(rounds)} rounds ==")
        print(f"{'variant':<20}{'events/s':>10}   ratios (median of per-round ratios)")
        for name in VARIANTS:
            rate = median([r[name] for r in rounds])
            ratios = []
            for base in BASELINES.get(name, ()):
                ratio = median([r[name] / r[base] for r in rounds])
                ratios.append(f"÷{base} = {ratio:.2f}")
            print(f"{name:<20}{fmt_rate(rate):>10}   {'; '.join(ratios)}")
        checks = {k: median([r[k] for r in rounds]) for k in rounds[0] if k.startswith("_")}
        print(f"checks: {checks}")


if __name__ == "__main__":
    main()
