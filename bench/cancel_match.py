"""Matching one incoming event against N pending cancel listeners (PostgreSQL).

For N = 100, 1 000, 10 000, 100 000 pending ``cancel_on`` listeners (each a distinct
``importId``, as ``Cancel(event="contacts/import.cancelled", match="data.importId")`` creates
them, bulk-inserted with their runs and triggering events), measures per incoming event:

- ``candidates``: the indexed candidate query alone (``listeners.candidates``);
- ``match_none`` / ``match_one``: ``listeners.matching_listeners`` (query + CEL evaluation)
  for an event matching no listener, and one matching exactly one;
- ``send_none`` / ``send_one``: the full ``events.send_events([...])``: validation, storage,
  routing, and for ``send_one`` the cancel itself (run row, listener deletion, the
  ``inngest/function.finished`` and ``inngest/function.cancelled`` system events, the
  on-commit signal). The cancelled run is restored after each repetition.

Medians of ``--reps`` interleaved repetitions. The sizes are measured one after another as the
table grows, so each repetition also times a small indexed ORM query (``ref``): the machine's
speed drifts, and the 100k/1k ratios are printed raw and divided by ``ref``'s. Targets: 100k/1k ≤ 2x, ≤ 10 ms per event at
100 000. Also prints the naive baseline (evaluate every listener's CEL, N = 1 000, with cached
and with cold programs, extrapolated to 100 000) and the candidate query's EXPLAIN ANALYZE,
checking that it uses ``inngest_listener_match``.

    .venv/bin/python bench/cancel_match.py [--quick] [--sizes 100,1000,10000,100000] [--reps 9]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import drop_pg, median, migrate, recreate_pg, setup_django

DB_NAME = "bench_inngest_match"
TRIGGER = "contacts/import.requested"
CANCEL = "contacts/import.cancelled"
RULE = "event.data.importId == async.data.importId"


def clear_expression_caches() -> None:
    """Forget every compiled CEL program and parse tree (the ``lru_cache``s in expressions)."""
    import django_inngest.expressions as package

    modules = [package] + [
        sys.modules[name] for name in list(sys.modules) if name.startswith(package.__name__ + ".")
    ]
    for module in modules:
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 10 000, fewer reps")
    parser.add_argument("--sizes", default="", help="comma-separated listener counts")
    parser.add_argument("--reps", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [100, 1000, 10000] if args.quick else [100, 1000, 10000, 100000]
    )
    reps = args.reps or (5 if args.quick else 9)
    env = {"BENCH_DATABASE_URL": recreate_pg(DB_NAME)}
    try:
        migrate(env)
        setup_django(env)
        run(sorted(sizes), reps)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_pg(DB_NAME)


def run(sizes: list[int], reps: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from bench.benchapp.inngest_functions import IMPORTER
    from django_inngest import expressions, matching
    from django_inngest.ids import new_ulid
    from django_inngest.ingest import delivery as listeners
    from django_inngest.ingest.events import send_events
    from django_inngest.models import (
        Event,
        FunctionRegistration,
        FunctionRun,
        Listener,
        ListenerKind,
        RunStatus,
        WaitKind,
    )

    now = timezone.now()
    template = expressions.interpolate(RULE, {"name": TRIGGER, "data": {"importId": "@ID@"}})
    sample = template.replace("@ID@", "x")
    assert matching.key_for_expression(sample) == matching.listener_key("data.importId", "x")
    print(f"listener expression: {template.replace('@ID@', '<uuid>')}")
    import_ids: list[str] = []

    def grow(target: int) -> float:
        start = time.perf_counter()
        while len(import_ids) < target:
            count = min(5000, target - len(import_ids))
            ids = [str(uuid.uuid4()) for _ in range(count)]
            ms = int(now.timestamp() * 1000)
            events = [
                Event(internal_id=new_ulid(ms), name=TRIGGER, data={"importId": i}, ts=ms,
                      received_at=now)
                for i in ids
            ]  # fmt: skip
            runs = [
                FunctionRun(
                    run_id=new_ulid(ms), function_id=IMPORTER, event_id=e.internal_id,
                    status=RunStatus.RUNNING, wait_kind=WaitKind.SLEEP,
                    ready_at=now + timedelta(hours=1), created_at=now, started_at=now,
                )
                for e in events
            ]  # fmt: skip
            rows = [
                Listener(
                    kind=ListenerKind.CANCEL, run_id=r.run_id, event_name=CANCEL,
                    expression=template.replace("@ID@", i),
                    match_key=matching.listener_key("data.importId", i),
                    trigger_event_id=r.event_id, expires_at=now + timedelta(days=365),
                    created_at=now,
                )
                for r, i in zip(runs, ids, strict=True)
            ]  # fmt: skip
            Event.objects.bulk_create(events)
            FunctionRun.objects.bulk_create(runs)
            Listener.objects.bulk_create(rows)
            import_ids.extend(ids)
        # Settle the bulk insert (as autovacuum eventually would) so that the measurement does
        # not race autovacuum and a checkpoint: statistics, visibility map, dirty pages flushed.
        with connection.cursor() as cursor:
            for table in ("django_inngest_listener", "django_inngest_functionrun",
                          "django_inngest_event"):  # fmt: skip
                cursor.execute(f"VACUUM (ANALYZE) {table}")
            cursor.execute("CHECKPOINT")
        return time.perf_counter() - start

    def incoming(import_id: str) -> Event:
        ms = int(time.time() * 1000)
        return Event(
            internal_id=new_ulid(ms), name=CANCEL, data={"importId": import_id, "by": "user-1"},
            ts=ms, received_at=timezone.now(),
        )  # fmt: skip

    def payload(import_id: str) -> dict[str, Any]:
        return {"name": CANCEL, "data": {"importId": import_id, "by": "user-1"}}

    def restore(import_id: str) -> None:
        listener_run = FunctionRun.objects.get(event__data__importId=import_id)
        assert listener_run.status == RunStatus.CANCELLED, listener_run.status
        FunctionRun.objects.filter(pk=listener_run.pk).update(
            status=RunStatus.RUNNING, wait_kind=WaitKind.SLEEP, ended_at=None,
            ready_at=now + timedelta(hours=1), cancel_source="", cancel_reason="",
            cancelled_signal_sent=False,
        )  # fmt: skip
        Listener.objects.create(
            kind=ListenerKind.CANCEL, run_id=listener_run.pk, event_name=CANCEL,
            expression=template.replace("@ID@", import_id),
            match_key=matching.listener_key("data.importId", import_id),
            trigger_event_id=listener_run.event_id, expires_at=now + timedelta(days=365),
            created_at=now,
        )  # fmt: skip

    # Warm up connections, CEL programs and registrations.
    grow(sizes[0])
    send_events([payload(str(uuid.uuid4()))])
    rows: list[dict[str, Any]] = []
    rng_index = 0
    for size in sizes:
        took = grow(size)
        print(f"N={size:>7,}: inserted in {took:.1f}s", flush=True)
        samples: dict[str, list[float]] = {
            k: [] for k in ("candidates", "match_none", "match_one", "send_none", "send_one", "ref")
        }
        for _ in range(reps):
            rng_index = (rng_index * 7919 + 104729) % size
            target = import_ids[rng_index]
            miss = incoming(str(uuid.uuid4()))
            hit = incoming(target)
            t = time.perf_counter()
            for _ in range(5):  # the drift reference: a small indexed ORM query, x5
                FunctionRegistration.objects.filter(function_id=IMPORTER).first()
            samples["ref"].append((time.perf_counter() - t) / 5)
            t = time.perf_counter()
            found = listeners.candidates(miss, miss.as_payload(), timezone.now())
            samples["candidates"].append(time.perf_counter() - t)
            assert not found
            t = time.perf_counter()
            found = listeners.matching_listeners(miss, timezone.now())
            samples["match_none"].append(time.perf_counter() - t)
            assert not found
            t = time.perf_counter()
            found = listeners.matching_listeners(hit, timezone.now())
            samples["match_one"].append(time.perf_counter() - t)
            assert len(found) == 1, found
            t = time.perf_counter()
            send_events([payload(str(uuid.uuid4()))])
            samples["send_none"].append(time.perf_counter() - t)
            t = time.perf_counter()
            send_events([payload(target)])
            samples["send_one"].append(time.perf_counter() - t)
            restore(target)
        row = {"n": size, **{k: median(v) * 1000 for k, v in samples.items()}}
        rows.append(row)
        print("  " + ", ".join(f"{k} {v:.2f} ms" for k, v in row.items() if k != "n"), flush=True)

    print(f"\n== per incoming event, ms (median of {reps}) ==")
    keys = ("candidates", "match_none", "match_one", "send_none", "send_one")
    print(f"{'N listeners':>12}" + "".join(f"{k:>12}" for k in (*keys, "ref")))
    for row in rows:
        print(f"{row['n']:>12,}" + "".join(f"{row[k]:>12.2f}" for k in (*keys, "ref")))
    by_n = {row["n"]: row for row in rows}
    if 1000 in by_n and 100000 in by_n:
        ratios = {k: by_n[100000][k] / by_n[1000][k] for k in keys}
        drift = by_n[100000]["ref"] / by_n[1000]["ref"]
        print(
            f"{'100k / 1k':>12}" + "".join(f"{ratios[k]:>11.2f}x" for k in keys)
            + "   (target ≤ 2x)"
        )  # fmt: skip
        print(
            f"{'÷ drift':>12}" + "".join(f"{ratios[k] / drift:>11.2f}x" for k in keys)
            + f"   (the same, divided by the reference query's 100k/1k = {drift:.2f})"
        )  # fmt: skip
        worst = max(by_n[100000][k] for k in keys)
        print(f"slowest at 100 000: {worst:.2f} ms per event (target ≤ 10 ms)")

    # The naive baseline: every listener of the event name evaluated in turn (N = 1 000).
    naive_n = 1000
    ids = import_ids[:naive_n]
    Listener.objects.exclude(run__event__data__importId__in=ids).update(event_name="other/name")
    event = incoming(ids[-1])

    def naive() -> int:
        payload_ = event.as_payload()
        return sum(
            1
            for listener in Listener.objects.filter(
                event_name=CANCEL, expires_at__gt=timezone.now()
            )
            if expressions.evaluate(listener.expression, async_=payload_)
        )

    assert naive() == 1
    warm = []
    cold = []
    for _ in range(3):
        t = time.perf_counter()
        naive()
        warm.append(time.perf_counter() - t)
        clear_expression_caches()
        t = time.perf_counter()
        naive()
        cold.append(time.perf_counter() - t)
    Listener.objects.filter(event_name="other/name").update(event_name=CANCEL)
    w, c = median(warm) * 1000, median(cold) * 1000
    indexed = by_n.get(1000, rows[-1])["match_none"]
    print(
        f"\nnaive baseline, N={naive_n}: {w:.1f} ms per event with cached CEL programs, "
        f"{c:.1f} ms cold (compiling each); x{w / indexed:.0f} / x{c / indexed:.0f} the indexed "
        f"match_none at 1k.\n  Extrapolated to 100 000 listeners: ~{w * 100 / 1000:.1f} s warm, "
        f"~{c * 100 / 1000:.1f} s cold per event (linear in N)."
    )

    # The candidate query's plan at the largest size.
    probe = incoming(import_ids[0])
    with CaptureQueriesContext(connection) as captured:
        listeners.candidates(probe, probe.as_payload(), timezone.now())
    sql = captured.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        plan = "\n".join(r[0] for r in cursor.fetchall())
    print(f"\n== EXPLAIN ANALYZE of the candidate query, N={sizes[-1]:,} ==\n{plan}")
    uses = "inngest_listener_match" in plan
    print(f"\nuses inngest_listener_match: {'YES' if uses else 'NO'}")


if __name__ == "__main__":
    main()
