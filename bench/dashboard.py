"""The dashboard and the metrics endpoint at 1M runs on PostgreSQL.

    .venv/bin/python bench/dashboard.py [--rows 1000000] [--reuse] [--repeat 5]

Uses the database bench/search.py fills (1M runs spread over 7 days, so the week window
aggregates every one of them). Times each chart's queries for the hour, day and week windows,
for all functions and for one, twice: cold (the cache of ended buckets emptied first: the
first view after a restart) and warm (every later view, which reads only the open bucket);
medians of ``--repeat`` runs each. Then one Prometheus scrape. Target: <= 500 ms per chart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import setup_django
from bench.console_data import machine_load, prepare


def median_ms(action: Callable[[], Any], repeat: int) -> float:
    action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = prepare(args.rows, reuse=args.reuse)
    setup_django(env)

    from django.core.cache import cache
    from django.db import transaction

    from django_inngest.console.dashboard import WINDOWS, _Query

    def cold(action: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            cache.clear()
            return action()

        return run

    def in_transaction(action: Callable[[], Any]) -> Callable[[], Any]:
        # As build_dashboard runs them: one transaction with a larger work_mem for the sorts.
        def run() -> Any:
            with transaction.atomic():
                from django.db import connection

                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL work_mem = '64MB'")
                return action()

        return run

    now = datetime.now(UTC)
    print(f"\n{machine_load()}")
    print("cold / warm, ms")
    print(
        f"{'window':6} {'function':16} {'runs':>11} {'durations':>11} {'backlog':>11} {'tables':>11}"
    )
    for key in WINDOWS:
        for function_id in (None, "bench-app-fn-3"):
            query = _Query(WINDOWS[key], function_id, now)

            def runs_chart(q: _Query = query) -> Any:
                return q.per_bucket("created_at"), q.ended_by_status()

            def durations_chart(q: _Query = query) -> Any:
                return q.durations(), q.overall_percentiles()

            def backlog_chart(q: _Query = query) -> Any:
                return q.backlog(q.per_bucket("created_at"))

            cells = []
            for chart in (runs_chart, durations_chart, backlog_chart, query.per_function):
                chart = in_transaction(chart)
                cells.append(
                    f"{median_ms(cold(chart), args.repeat):>5.0f} /{median_ms(chart, args.repeat):>4.0f}"
                )
            label = function_id or "all"
            print(f"{key:6} {label:16} " + " ".join(cells))

    try:
        from django_inngest.console.metrics import collect_text
    except ImportError:
        return
    scrape_cold = median_ms(cold(collect_text), args.repeat)
    scrape_warm = median_ms(collect_text, args.repeat)
    print(
        f"\nPrometheus scrape, cold / warm (hourly checkpoint cached): {scrape_cold:.0f} / {scrape_warm:.0f} ms"
    )
    print(f"{machine_load()}")


if __name__ == "__main__":
    main()
