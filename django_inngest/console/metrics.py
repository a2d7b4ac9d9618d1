"""Prometheus metrics, computed from the database at scrape time.

Runs are advanced by django-q2 worker processes, so no single process sees every run end: an
in-process counter in the web server would count nothing, and one per worker would reset with
each restart. The tables already hold every fact, so a custom collector turns them into
metrics with a handful of aggregate queries per scrape (no row is loaded into Python):

* ``inngest_runs_total{function_id,status}`` - runs that ended, per terminal status (counter)
* ``inngest_run_duration_seconds{function_id}`` - creation to end of Completed and Failed runs
  (histogram)
* ``inngest_step_duration_seconds{kind}`` - start to end of finished ``step.run`` and
  ``step.send_event`` steps, per kind (histogram)
* ``inngest_runs_active{function_id,state}`` - queued, running, sleeping, waiting, retrying
  (gauge)
* ``inngest_cancellations_total{source}`` - cancelled runs per source: event, api, bulk, admin,
  cli, python (counter)

Counters are monotonic as long as runs are not deleted; deleting old runs lowers them, which
Prometheus's ``rate()`` reads as a counter reset (harmless).

``prometheus_client`` is optional (``pip install django-inngest[metrics]``). The endpoint takes
the signing key as a Bearer token, or a logged-in user with ``view_functionrun``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from django_inngest.api.keys import signing_key_is_valid
from django_inngest.console.dashboard import SETTLE, seconds_between

RUN_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400)
STEP_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600)
RUNS = "django_inngest_functionrun"
STEPS = "django_inngest_steprun"
PERMISSION = "django_inngest.view_functionrun"
CHECKPOINT_VERSION = 1
#: What a Running run's wait_kind means as a state of the active-runs gauge.
RUNNING_STATES = {"": "running", "sleep": "sleeping", "event": "waiting", "invoke": "waiting",
                  "retry": "retrying"}  # fmt: skip


def _rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def _bucket_sums(duration: str, bounds: tuple[float, ...]) -> str:
    return ", ".join(f"SUM(CASE WHEN {duration} <= {b} THEN 1 ELSE 0 END)" for b in bounds)


def _histogram_rows(
    table: str, labels: str, start: str, where: str, bounds: tuple[float, ...], params: list[Any]
) -> list[tuple[Any, ...]]:
    """Per label values: count, sum of seconds, then one cumulative count per bound."""
    duration = seconds_between(start, "ended_at")
    return _rows(
        f"SELECT {labels}, count(*), SUM({duration}), {_bucket_sums(duration, bounds)} "
        f"FROM {table} WHERE {where} GROUP BY {labels}",
        params,
    )


Totals = dict[tuple[Any, ...], list[float]]


def _add(totals: Totals, rows: list[tuple[Any, ...]], width: int) -> Totals:
    merged = {key: list(values) for key, values in totals.items()}
    for row in rows:
        key, values = tuple(row[:width]), row[width:]
        sums = merged.setdefault(key, [0.0] * len(values))
        for index, value in enumerate(values):
            sums[index] += float(value or 0)
    return merged


def _ended_totals(
    name: str, query: Callable[[str, list[Any]], list[tuple[Any, ...]]], width: int
) -> Totals:
    """Sums over every row that has ended, read incrementally.

    Rows that ended before the last whole hour (less a minute for late commits) never change,
    so their sums are kept in Django's cache as a checkpoint, moved forward an hour at a time;
    each scrape reads only the rows that ended since. The first scrape after a restart (or a
    cache flush) reads the whole table once. ``query(where, params)`` returns rows of ``width``
    labels followed by the sums.
    """
    now = timezone.now()
    cutoff = datetime.fromtimestamp(int((now - SETTLE).timestamp()) // 3600 * 3600, tz=UTC)
    key = f"inngest-metrics:{CHECKPOINT_VERSION}:{name}"
    checkpoint = cache.get(key)
    if checkpoint is not None and checkpoint[0] == cutoff:
        settled: Totals = checkpoint[1]
    else:
        if checkpoint is not None and checkpoint[0] < cutoff:
            rows = query("ended_at >= %s AND ended_at < %s", [checkpoint[0], cutoff])
            settled = _add(checkpoint[1], rows, width)
        else:
            settled = _add({}, query("ended_at < %s", [cutoff]), width)
        cache.set(key, (cutoff, settled), timeout=None)
    return _add(settled, query("ended_at >= %s", [cutoff]), width)


class InngestCollector:
    """A ``prometheus_client`` custom collector; each ``collect()`` queries the database."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        runs = CounterMetricFamily(
            "inngest_runs",
            "Runs that ended, per terminal status.",
            labels=["function_id", "status"],
        )
        durations = HistogramMetricFamily(
            "inngest_run_duration_seconds",
            "Run duration, from creation to end, of Completed and Failed runs.",
            labels=["function_id"],
        )
        # One aggregate over the ended runs (incremental: see _ended_totals) feeds the run
        # counters, the duration histogram and the cancellation counters.
        ended = _ended_totals(
            "runs",
            lambda where, params: _histogram_rows(
                RUNS, "function_id, status, cancel_source", "created_at", where, RUN_BUCKETS, params
            ),
            width=3,
        )
        per_status: dict[tuple[str, str], float] = {}
        per_function: dict[str, list[float]] = {}
        per_source: dict[str, float] = {}
        for (function_id, status, source), (count, total, *cumulative) in ended.items():
            per_status[(function_id, status)] = per_status.get((function_id, status), 0) + count
            if status == "Cancelled":
                per_source[source or "unknown"] = per_source.get(source or "unknown", 0) + count
            if status in ("Completed", "Failed"):
                sums = per_function.setdefault(function_id, [0.0] * (len(RUN_BUCKETS) + 2))
                for index, value in enumerate((count, total, *cumulative)):
                    sums[index] += value
        for (function_id, status), count in sorted(per_status.items()):
            runs.add_metric([function_id, status], count)
        for function_id, (count, total, *cumulative) in sorted(per_function.items()):
            durations.add_metric([function_id], _buckets(RUN_BUCKETS, cumulative, count), total)
        yield runs
        yield durations

        steps = HistogramMetricFamily(
            "inngest_step_duration_seconds",
            "Duration of finished step.run and step.send_event steps, from start to end.",
            labels=["kind"],
        )
        finished_steps = _ended_totals(
            "steps",
            lambda where, params: _histogram_rows(
                STEPS,
                "kind",
                "started_at",
                f"kind IN ('run', 'send') AND {where}",
                STEP_BUCKETS,
                params,
            ),
            width=1,
        )
        for (kind,), (count, total, *cumulative) in sorted(finished_steps.items()):
            steps.add_metric([kind], _buckets(STEP_BUCKETS, cumulative, count), total)
        yield steps

        active = GaugeMetricFamily(
            "inngest_runs_active",
            "Runs not ended yet: queued, running, sleeping, waiting (for an event or an "
            "invoked run) or retrying.",
            labels=["function_id", "state"],
        )
        states: dict[tuple[str, str], int] = {}
        for function_id, status, wait_kind, count in _rows(
            f"SELECT function_id, status, wait_kind, count(*) FROM {RUNS} "
            "WHERE status IN ('Queued', 'Running') GROUP BY function_id, status, wait_kind"
        ):
            state = "queued" if status == "Queued" else RUNNING_STATES.get(wait_kind, "running")
            states[(function_id, state)] = states.get((function_id, state), 0) + count
        for (function_id, state), count in sorted(states.items()):
            active.add_metric([function_id, state], count)
        yield active

        cancels = CounterMetricFamily(
            "inngest_cancellations", "Cancelled runs, per cancellation source.", labels=["source"]
        )
        for source, count in sorted(per_source.items()):
            cancels.add_metric([source], count)
        yield cancels


def _buckets(
    bounds: tuple[float, ...], cumulative: list[Any], count: Any
) -> list[tuple[str, float]]:
    return [
        *((_le(bound), float(value or 0)) for bound, value in zip(bounds, cumulative, strict=True)),
        ("+Inf", float(count)),
    ]


def _le(bound: float) -> str:
    return str(float(bound))


def collect_text() -> bytes:
    """The exposition text of every metric (what the endpoint serves)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(InngestCollector())
    return bytes(generate_latest(registry))


def _allowed(request: HttpRequest) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return signing_key_is_valid(token.strip())
    user: Any = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.has_perm(PERMISSION))


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text format; 401 without credentials, 403 without the
    permission, 501 when ``prometheus_client`` is not installed."""
    if not _allowed(request):
        user: Any = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return HttpResponse(f"Permission required: {PERMISSION}\n", status=403)
        response = HttpResponse(
            "Authenticate with 'Authorization: Bearer <signing key>'.\n", status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="django_inngest"'
        return response
    try:
        from prometheus_client import CONTENT_TYPE_LATEST
    except ImportError:
        return HttpResponse(
            "Metrics need prometheus_client: pip install 'django-inngest[metrics]'\n", status=501
        )
    return HttpResponse(collect_text(), content_type=CONTENT_TYPE_LATEST)
