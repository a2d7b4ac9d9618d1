"""Payload search at 1M events on PostgreSQL: ``data @> {...}`` through the GIN index.

    .venv/bin/python bench/search.py [--rows 1000000] [--reuse] [--repeat 20]

Times, as medians of ``--repeat`` warm runs, the queries the admin and the API run: events
whose payload has a given ``importId`` (one match), a ``listId`` (1% of the events: the first
page of 100), a nested ``user.id``, and the runs those events started. Target: <= 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import setup_django
from bench.console_data import machine_load, prepare


def timed(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    action()  # warm the cache and the plan
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already filled database")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    env = prepare(args.rows, reuse=args.reuse)
    setup_django(env)

    from django.db import connection
    from rest_framework.test import APIClient

    from django_inngest.console.payload_search import parse_payload_search, payload_q
    from django_inngest.models import Event, FunctionRun

    def events(text: str) -> Callable[[], int]:
        query = Event.objects.filter(payload_q(parse_payload_search(text)))
        return lambda: len(list(query.order_by("-received_at", "-pk")[:100]))

    def runs(text: str) -> Callable[[], int]:
        query = FunctionRun.objects.filter(
            payload_q(parse_payload_search(text), field="event__data")
        )
        return lambda: len(list(query.order_by("-created_at")[:100]))

    from django.conf import settings

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.DJANGO_INNGEST_SIGNING_KEY}")

    def through_api(query: str) -> Callable[[], int]:
        def call() -> int:
            response = api.get(f"/v1/events?{query}&limit=100")
            assert response.status_code == 200, response.content
            return len(response.json()["data"])

        return call

    middle = args.rows // 2
    cases = [
        ("events importId=imp-<middle> (1 match)", events(f"importId=imp-{middle}")),
        ("events listId=list-7 (1%, first 100)", events("listId=list-7")),
        ("events user.id=42 (number or string)", events("user.id=42")),
        ("runs importId=imp-<middle>", runs(f"importId=imp-{middle}")),
        ("runs listId=list-7 (first 100)", runs("listId=list-7")),
        (f"API /v1/events?data.importId=imp-{middle}", through_api(f"data.importId=imp-{middle}")),
    ]
    print(f"\n{machine_load()}")
    print(f"{'query':48} {'median ms':>10} {'rows':>6}")
    for label, action in cases:
        median, found = timed(action, args.repeat)
        print(f"{label:48} {median:10.2f} {found:6}")
    sql, params = Event.objects.filter(
        payload_q(parse_payload_search(f"importId=imp-{middle}"))
    ).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        print("\nplan (events importId):")
        for (line,) in cursor.fetchall():
            print("  " + line)
    print(f"\n{machine_load()}")


if __name__ == "__main__":
    main()
