"""Fills a PostgreSQL database with console-sized data: 1M events, 1M runs, 2M steps.

Written with ``generate_series`` in SQL, so the data costs about a minute, not an hour of ORM
calls. Runs are spread evenly over the last 7 days across 10 functions (the week window of the
dashboard aggregates all of them: the worst case); 90% Completed, 5% Failed, 3% Cancelled, the
rest Queued or Running (sleeping). Each run has a ``step.run`` and a ``step.sleep`` step. Each
event's payload has a unique ``importId`` (``imp-<n>``), one of 100 ``listId`` values and a
nested ``user.id``.
"""

from __future__ import annotations

import time

FUNCTIONS = 10


def fill(conn: object, rows: int) -> dict[str, float]:
    """Insert the data over ``conn`` (a psycopg connection); returns seconds per table."""
    timings: dict[str, float] = {}

    def run(name: str, sql: str) -> None:
        started = time.perf_counter()
        conn.execute(sql)  # type: ignore[attr-defined]
        timings[name] = round(time.perf_counter() - started, 1)

    run(
        "functions",
        f"""
        INSERT INTO django_inngest_functionregistration
            (function_id, app_id, fn_id, name, is_active, config, created_at, updated_at)
        SELECT 'bench-app-fn-' || f, 'bench-app', 'fn-' || f, 'Function ' || f, true, '{{}}',
               now(), now()
        FROM generate_series(0, {FUNCTIONS - 1}) AS f
        """,
    )
    # A ULID-shaped primary key: 26 characters, sortable by creation (good enough for a bench).
    ulid = "upper(lpad(to_hex(i), 26, '0'))"
    spread = f"now() - interval '7 days' * (1 - i::float / {rows})"
    run(
        "events",
        f"""
        INSERT INTO django_inngest_event
            (internal_id, external_id, name, data, "user", ts, v, received_at, is_duplicate)
        SELECT {ulid}, '', 'contacts/import.requested',
               jsonb_build_object('importId', 'imp-' || i, 'listId', 'list-' || (i % 100),
                                  'user', jsonb_build_object('id', i % 5000)),
               '{{}}', 0, '', {spread}, false
        FROM generate_series(1, {rows}) AS i
        """,
    )
    run(
        "runs",
        f"""
        INSERT INTO django_inngest_functionrun
            (run_id, function_id, event_id, status, wait_kind, ready_at, dispatched_at,
             lease_owner, lease_expires_at, attempt, created_at, started_at, ended_at,
             output, error, cancel_source, cancel_reason, cancellation_id,
             cancelled_signal_sent, parent_run_id, parent_step_id, original_run_id,
             cancel_actor, cancel_event_id, priority, gated, gates, cron)
        SELECT {ulid}, 'bench-app-fn-' || (i % {FUNCTIONS}), {ulid},
               s.status, CASE WHEN s.status = 'Running' THEN 'sleep' ELSE '' END,
               NULL, NULL, '', NULL, 0,
               {spread},
               CASE WHEN s.status = 'Queued' THEN NULL
                    ELSE {spread} + interval '5 milliseconds' END,
               CASE WHEN s.status IN ('Queued', 'Running') THEN NULL
                    ELSE {spread} + make_interval(secs => 0.05 + (i % 97) * 0.1 * (1 + i % {FUNCTIONS})) END,
               NULL,
               CASE WHEN s.status = 'Failed'
                    THEN '{{"name": "ValueError", "message": "boom"}}'::jsonb END,
               CASE WHEN s.status = 'Cancelled' THEN 'event' ELSE '' END, '', NULL,
               s.status = 'Cancelled', NULL, '', '', '', NULL, 0, false, '{{}}', ''
        FROM generate_series(1, {rows}) AS i,
             LATERAL (SELECT CASE
                 WHEN i % 100 < 90 THEN 'Completed' WHEN i % 100 < 95 THEN 'Failed'
                 WHEN i % 100 < 98 THEN 'Cancelled' WHEN i % 100 < 99 THEN 'Running'
                 ELSE 'Queued' END AS status) AS s
        """,
    )
    run(
        "steps",
        """
        INSERT INTO django_inngest_steprun
            (run_id, step_id, position, kind, status, attempts, attempt_log, output, error,
             started_at, ended_at, wake_at, matched_event_id, display_name)
        SELECT r.run_id, k.step_id, k.position, k.kind,
               CASE WHEN r.status = 'Running' AND k.kind = 'sleep' THEN 'Sleeping'
                    ELSE 'Completed' END,
               1, '[]', NULL, NULL,
               r.started_at + k.position * interval '10 milliseconds',
               CASE WHEN r.status = 'Running' AND k.kind = 'sleep' THEN NULL
                    ELSE r.started_at + (k.position + 1) * interval '10 milliseconds' END,
               NULL, NULL, ''
        FROM django_inngest_functionrun r
        CROSS JOIN (VALUES ('fetch', 0, 'run'), ('pause', 1, 'sleep')) AS k(step_id, position, kind)
        WHERE r.started_at IS NOT NULL
        """,
    )
    return timings


DBNAME = "bench_inngest_console"


def prepare(rows: int, *, reuse: bool) -> dict[str, str]:
    """Create (or, with ``reuse``, keep) the filled database; returns the env that selects it."""
    import psycopg

    from bench.common import migrate, pg_url, recreate_pg

    url = pg_url(DBNAME)
    if reuse:
        try:
            with psycopg.connect(url) as conn:
                count = conn.execute("SELECT count(*) FROM django_inngest_functionrun").fetchone()
            if count and count[0] >= rows:
                print(f"reusing {DBNAME} ({count[0]:,} runs)")
                return {"BENCH_DATABASE_URL": url}
        except psycopg.Error:
            pass
    env = {"BENCH_DATABASE_URL": recreate_pg(DBNAME)}
    migrate(env)
    with psycopg.connect(url, autocommit=True) as conn:
        print(f"filling {DBNAME} with {rows:,} events and runs ...", flush=True)
        print("  seconds:", fill(conn, rows), flush=True)
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        print(f"  VACUUM ANALYZE: {time.perf_counter() - started:.1f}s", flush=True)
    return env


def machine_load() -> str:
    import os

    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
