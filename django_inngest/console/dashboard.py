"""The dashboard's numbers: runs over time, durations, the backlog, the worst functions.

Every figure is computed by the database with GROUP BY over a time window (no row is loaded
into Python; at most a few hundred aggregated rows are), from indexes added by migration
``0002_console_search_and_dashboard_indexes``. The SQL is written out because it differs per
database in two places only: how an instant becomes a bucket number, and how a duration
becomes seconds. Percentiles are nearest-rank (PostgreSQL's ``percentile_disc``; elsewhere the
same rank through window functions), so both databases give the same answer.

The backlog is not stored anywhere, so it is derived: the number queued (or waiting) *now* is
counted, and earlier values are found by walking back through the window, undoing each
bucket's arrivals and departures, both of which are timestamps on the rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction

RUNS = "django_inngest_functionrun"
STEPS = "django_inngest_steprun"
WAITING_KINDS = ("sleep", "wait", "invoke")
#: What a Running run waits on when it counts as "waiting" (retry backoff is not a wait).
WAITING_RUN_KINDS = ("sleep", "event", "invoke")
ENDED_FOR_DURATION = ("Completed", "Failed")
TOP = 5
#: The per-function tables cover the whole window, so they are cached for this long only.
TABLES_TTL = 60


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    span: timedelta
    bucket: timedelta
    bucket_label: str


WINDOWS = {
    "hour": Window("hour", "Last hour", timedelta(hours=1), timedelta(minutes=2), "2 minutes"),
    "day": Window("day", "Last day", timedelta(days=1), timedelta(hours=1), "hour"),
    "week": Window("week", "Last week", timedelta(days=7), timedelta(hours=6), "6 hours"),
}


@dataclass
class Dashboard:
    window: Window
    function_id: str | None
    #: Start of each bucket, oldest first.
    buckets: list[datetime]
    started: list[int]
    ended: dict[str, list[int]]
    p50: list[float | None]
    p95: list[float | None]
    queued: list[int]
    waiting: list[int]
    slowest: list[dict[str, Any]] = field(default_factory=list)
    failing: list[dict[str, Any]] = field(default_factory=list)
    overall: dict[str, Any] = field(default_factory=dict)


# -- SQL pieces ------------------------------------------------------------------------------


def _bucket(column: str, size: int) -> str:
    if connection.vendor == "postgresql":
        # date_bin is about twice as fast as arithmetic on extract(epoch), which is numeric.
        return f"date_bin('{size} seconds', {column}, timestamptz 'epoch')"
    # SQLite stores UTC text; julianday() reads it. Times after 1970 are positive, so CAST's
    # truncation is a floor.
    return f"CAST((julianday({column}) - 2440587.5) * 86400 / {size} AS INTEGER)"


def seconds_between(start: str, end: str) -> str:
    if connection.vendor == "postgresql":
        return f"extract(epoch from ({end} - {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def _percentiles(group: str, duration: str, where: str) -> str:
    """``(group, n, p50, p95)`` rows, nearest-rank on both databases."""
    if connection.vendor == "postgresql":
        return (
            f"SELECT {group} AS g, count(*) AS n, "
            f"percentile_disc(0.5) WITHIN GROUP (ORDER BY {duration}) AS p50, "
            f"percentile_disc(0.95) WITHIN GROUP (ORDER BY {duration}) AS p95 "
            f"FROM {RUNS} WHERE {where} GROUP BY g"
        )
    return (
        f"SELECT g, MAX(n) AS n, MIN(CASE WHEN rn >= 0.5 * n THEN d END) AS p50, "
        f"MIN(CASE WHEN rn >= 0.95 * n THEN d END) AS p95 FROM ("
        f"SELECT g, d, ROW_NUMBER() OVER (PARTITION BY g ORDER BY d) AS rn, "
        f"COUNT(*) OVER (PARTITION BY g) AS n FROM ("
        f"SELECT {group} AS g, {duration} AS d FROM {RUNS} WHERE {where})) GROUP BY g"
    )


def _bucket_number(value: Any, size: int) -> int:
    """A bucket column's value (a timestamp on PostgreSQL, a number elsewhere) as a number."""
    if isinstance(value, datetime):
        return int(value.timestamp()) // size
    return int(value)


def _ms(seconds: Any) -> float:
    # SQLite's julianday() arithmetic is off by some microseconds; nobody reads finer than ms.
    return round(float(seconds), 3)


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _scalar(sql: str, params: list[Any]) -> int:
    rows = _rows(sql, params)
    return int(rows[0][0] or 0) if rows else 0


def _function_filter(function_id: str | None, column: str = "function_id") -> tuple[str, list[Any]]:
    return (f" AND {column} = %s", [function_id]) if function_id else ("", [])


# -- the queries -----------------------------------------------------------------------------

#: A bucket is final (cacheable) once it ended this long ago: a transaction that wrote a
#: timestamp inside it has committed by then.
SETTLE = timedelta(minutes=1)
CACHE_VERSION = 1


def _cache_prefix(name: str, function_id: str | None, scope: object) -> str:
    # Hashed: function IDs and query names hold characters memcached keys may not.
    digest = hashlib.sha256(f"{name}|{function_id or '*'}|{scope}".encode()).hexdigest()[:24]
    return f"inngest-dash:{CACHE_VERSION}:{digest}"


class _Query:
    """The window's queries. Buckets are aligned to the epoch, so a bucket that has ended holds
    the same numbers for every later page view: those are kept in Django's cache, and only the
    buckets missing from it (after the first view: the current one) are queried."""

    def __init__(self, window: Window, function_id: str | None, now: datetime) -> None:
        self.window = window
        self.function_id = function_id
        self.size = int(window.bucket.total_seconds())
        self.since = now - window.span
        self.first = int(self.since.timestamp()) // self.size
        self.last = int(now.timestamp()) // self.size
        self.count = self.last - self.first + 1
        #: Buckets before this one are final.
        self.settled = int((now - SETTLE).timestamp()) // self.size

    def start_of(self, bucket: int) -> datetime:
        return datetime.fromtimestamp(bucket * self.size, tz=UTC)

    def bucketed(self, name: str, sql: str, params: list[Any]) -> dict[int, list[Any]]:
        """Rows of ``sql`` (its first column a bucket, ``%s`` first the lower time bound) by
        absolute bucket number: each a list of the remaining columns' values, in row order."""
        prefix = _cache_prefix(name, self.function_id, self.size)
        keys = {bucket: f"{prefix}:{bucket}" for bucket in range(self.first, self.settled)}
        cached = cache.get_many(list(keys.values())) if keys else {}
        found: dict[int, list[Any]] = {
            bucket: cached[key] for bucket, key in keys.items() if key in cached
        }
        missing = [bucket for bucket in range(self.first, self.last + 1) if bucket not in found]
        if not missing:
            return found
        fresh: dict[int, list[Any]] = {bucket: [] for bucket in missing}
        for bucket_value, *values in _rows(sql, [self.start_of(missing[0]), *params]):
            bucket = _bucket_number(bucket_value, self.size)
            if bucket in fresh:
                fresh[bucket].append(values)
        cache.set_many(
            {keys[bucket]: rows for bucket, rows in fresh.items() if bucket in keys},
            timeout=int(max(w.span for w in WINDOWS.values()).total_seconds()) + 86400,
        )
        return {**found, **fresh}

    def counts(self, name: str, sql: str, params: list[Any]) -> list[int]:
        by_bucket = self.bucketed(name, sql, params)
        return [
            sum(int(row[0]) for row in by_bucket.get(self.first + i, [])) for i in range(self.count)
        ]

    def per_bucket(self, column: str, extra: str = "") -> list[int]:
        fn_sql, fn_params = _function_filter(self.function_id)
        sql = (
            f"SELECT {_bucket(column, self.size)} AS b, count(*) FROM {RUNS} "
            f"WHERE {column} >= %s{extra}{fn_sql} GROUP BY b"
        )
        return self.counts(f"runs-{column}{extra}", sql, fn_params)

    def ended_by_status(self) -> dict[str, list[int]]:
        fn_sql, fn_params = _function_filter(self.function_id)
        sql = (
            f"SELECT {_bucket('ended_at', self.size)} AS b, status, count(*) FROM {RUNS} "
            f"WHERE ended_at >= %s{fn_sql} GROUP BY b, status"
        )
        by_bucket = self.bucketed("ended-by-status", sql, fn_params)
        result = {status: [0] * self.count for status in ("Completed", "Failed", "Cancelled")}
        for i in range(self.count):
            for status, n in by_bucket.get(self.first + i, []):
                result.setdefault(status, [0] * self.count)[i] += int(n)
        return result

    def durations(self) -> tuple[list[float | None], list[float | None]]:
        fn_sql, fn_params = _function_filter(self.function_id)
        where = f"ended_at >= %s AND status IN ('Completed', 'Failed'){fn_sql}"
        sql = _percentiles(
            _bucket("ended_at", self.size), seconds_between("created_at", "ended_at"), where
        )
        by_bucket = self.bucketed("durations", sql, fn_params)
        p50: list[float | None] = [None] * self.count
        p95: list[float | None] = [None] * self.count
        for i in range(self.count):
            for _n, fifty, ninety_five in by_bucket.get(self.first + i, []):
                p50[i], p95[i] = _ms(fifty), _ms(ninety_five)
        return p50, p95

    def overall_percentiles(self) -> dict[str, float | None]:
        # Window-wide like the tables (a sort of every duration): cached as briefly.
        key = _cache_prefix("overall", self.function_id, self.window.key)
        found = cache.get(key)
        if found is None:
            found = self._overall_percentiles()
            cache.set(key, found, timeout=TABLES_TTL)
        return found

    def _overall_percentiles(self) -> dict[str, float | None]:
        fn_sql, fn_params = _function_filter(self.function_id)
        where = f"ended_at >= %s AND status IN ('Completed', 'Failed'){fn_sql}"
        sql = _percentiles("1", seconds_between("created_at", "ended_at"), where)
        for _g, _n, p50, p95 in _rows(sql, [self.since, *fn_params]):
            return {"p50": _ms(p50), "p95": _ms(p95)}
        return {"p50": None, "p95": None}

    def per_function(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        key = _cache_prefix("tables", self.function_id, self.window.key)
        tables = cache.get(key)
        if tables is None:
            # Window-wide, so not cacheable per bucket: kept for a short while instead.
            tables = self._per_function()
            cache.set(key, tables, timeout=TABLES_TTL)
        return tables

    def _per_function(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        fn_sql, fn_params = _function_filter(self.function_id)
        where = f"ended_at >= %s AND status IN ('Completed', 'Failed'){fn_sql}"
        slow = _percentiles("function_id", seconds_between("created_at", "ended_at"), where)
        slowest = [
            {"function_id": g, "runs": int(n), "p50": _ms(p50), "p95": _ms(p95)}
            for g, n, p50, p95 in _rows(
                f"{slow} ORDER BY p95 DESC LIMIT {TOP}", [self.since, *fn_params]
            )
        ]
        failing_sql = (
            f"SELECT function_id, SUM(CASE WHEN status = 'Failed' THEN 1 ELSE 0 END) AS failed, "
            f"count(*) AS ended FROM {RUNS} WHERE ended_at >= %s{fn_sql} "
            f"GROUP BY function_id ORDER BY failed DESC, ended DESC LIMIT {TOP}"
        )
        failing = [
            {"function_id": g, "failed": int(f), "ended": int(e), "rate": int(f) / int(e)}
            for g, f, e in _rows(failing_sql, [self.since, *fn_params])
            if f
        ]
        return slowest, failing

    def backlog(self, started: list[int]) -> tuple[list[int], list[int]]:
        """Queued and waiting runs at each bucket's end (the last one: now)."""
        fn_sql, fn_params = _function_filter(self.function_id)
        queued_now = _scalar(
            f"SELECT count(*) FROM {RUNS} WHERE status = 'Queued'{fn_sql}", fn_params
        )
        # A run leaves the queue when it starts, or when it ends without starting (cancelled).
        left_queue = [
            a + b
            for a, b in zip(
                self.per_bucket("started_at"),
                self.per_bucket("ended_at", " AND started_at IS NULL"),
                strict=True,
            )
        ]
        waiting_kinds = ", ".join(f"'{kind}'" for kind in WAITING_RUN_KINDS)
        waiting_now = _scalar(
            f"SELECT count(*) FROM {RUNS} WHERE status = 'Running' "
            f"AND wait_kind IN ({waiting_kinds}){fn_sql}",
            fn_params,
        )
        entered, left = self.waiting_moves()
        return (
            self.walk_back(queued_now, started, left_queue),
            self.walk_back(waiting_now, entered, left),
        )

    def waiting_moves(self) -> tuple[list[int], list[int]]:
        kinds = ", ".join(f"'{kind}'" for kind in WAITING_KINDS)
        fn_sql, fn_params = _function_filter(self.function_id, "r.function_id")
        join = f" JOIN {RUNS} r ON r.run_id = s.run_id" if self.function_id else ""

        def steps(column: str) -> list[int]:
            sql = (
                f"SELECT {_bucket('s.' + column, self.size)} AS b, count(*) FROM {STEPS} s{join} "
                f"WHERE s.kind IN ({kinds}) AND s.{column} >= %s{fn_sql} GROUP BY b"
            )
            return self.counts(f"waits-{column}", sql, fn_params)

        entered = steps("started_at")
        # A wait ends when its step does, or, for a run cancelled or failed meanwhile, with
        # the run (the step row keeps no end: see django_inngest.console.step_outcome).
        interrupted_sql = (
            f"SELECT {_bucket('r.ended_at', self.size)} AS b, count(*) FROM {STEPS} s "
            f"JOIN {RUNS} r ON r.run_id = s.run_id WHERE s.kind IN ({kinds}) "
            f"AND s.ended_at IS NULL AND r.ended_at >= %s{fn_sql} GROUP BY b"
        )
        interrupted = self.counts("waits-interrupted", interrupted_sql, fn_params)
        left = [a + b for a, b in zip(steps("ended_at"), interrupted, strict=True)]
        return entered, left

    def walk_back(self, now_value: int, arrivals: list[int], departures: list[int]) -> list[int]:
        values = [0] * self.count
        level = now_value
        for index in range(self.count - 1, -1, -1):
            values[index] = max(level, 0)
            level = level - arrivals[index] + departures[index]
        return values


def build_dashboard(
    window_key: str, function_id: str | None = None, now: datetime | None = None
) -> Dashboard:
    window = WINDOWS[window_key]
    now = now or datetime.now(UTC)
    query = _Query(window, function_id, now)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Percentiles sort: keep the sort in memory rather than spilling to disk.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '64MB'")
        started = query.per_bucket("created_at")
        ended = query.ended_by_status()
        p50, p95 = query.durations()
        queued, waiting = query.backlog(started)
        slowest, failing = query.per_function()
        overall_percentiles = query.overall_percentiles()
    buckets = [
        datetime.fromtimestamp((query.first + i) * query.size, tz=UTC) for i in range(query.count)
    ]
    overall: dict[str, Any] = {
        "started": sum(started),
        **{status.lower(): sum(values) for status, values in ended.items()},
    }
    overall.update(overall_percentiles)
    return Dashboard(
        window,
        function_id,
        buckets,
        started,
        ended,
        p50,
        p95,
        queued,
        waiting,
        slowest,
        failing,
        overall,
    )
