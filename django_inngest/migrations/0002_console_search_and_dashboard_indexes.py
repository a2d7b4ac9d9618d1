"""Indexes for the operators' console: payload search, the dashboard, the metrics endpoint.

Raw SQL, not ``Meta.indexes``: the payload index is PostgreSQL's GIN with ``jsonb_path_ops``
(what ``data @> {...}`` needs; SQLite has no equivalent), and the covering ``INCLUDE`` columns,
which let the dashboard's aggregates read the index alone, are PostgreSQL-only too. The models'
state is unchanged, so ``makemigrations`` stays quiet.

On PostgreSQL the indexes are built ``CONCURRENTLY`` (the migration is not atomic), so that a
large events table keeps taking writes while they build.
"""

from django.db import migrations

RUNS = "django_inngest_functionrun"
EVENTS = "django_inngest_event"
STEPS = "django_inngest_steprun"

POSTGRES = (
    # Payload search: `data @> '{"importId": "abc"}'`.
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS inngest_event_data_gin ON {EVENTS} "
    "USING gin (data jsonb_path_ops)",
    # Dashboard: runs started per bucket, and the backlog's baseline, read from the index alone.
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS inngest_run_created_cover ON {RUNS} (created_at) "
    "INCLUDE (function_id, status, started_at, ended_at)",
    # Dashboard: runs ended per bucket and status, durations.
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS inngest_run_ended_cover ON {RUNS} (ended_at) "
    "INCLUDE (function_id, status, created_at) WHERE ended_at IS NOT NULL",
    # Dashboard: runs leaving the queue per bucket (the backlog).
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS inngest_run_started_cover ON {RUNS} (started_at) "
    "INCLUDE (function_id) WHERE started_at IS NOT NULL",
    # Dashboard: runs starting and ending a wait (sleep, wait_for_event, invoke) per bucket.
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS inngest_step_waiting ON {STEPS} (started_at) "
    "INCLUDE (ended_at, run_id) WHERE kind IN ('sleep', 'wait', 'invoke')",
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS inngest_step_waiting_end ON {STEPS} (ended_at) "
    "INCLUDE (run_id) WHERE kind IN ('sleep', 'wait', 'invoke') AND ended_at IS NOT NULL",
    # Metrics: steps finished since the last hourly checkpoint.
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS inngest_step_ended ON {STEPS} (ended_at) "
    "INCLUDE (started_at, kind) WHERE kind IN ('run', 'send') AND ended_at IS NOT NULL",
)
OTHERS = (
    f"CREATE INDEX IF NOT EXISTS inngest_run_created ON {RUNS} (created_at)",
    f"CREATE INDEX IF NOT EXISTS inngest_run_ended ON {RUNS} (ended_at) "
    "WHERE ended_at IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS inngest_run_started ON {RUNS} (started_at) "
    "WHERE started_at IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS inngest_step_waiting ON {STEPS} (started_at) "
    "WHERE kind IN ('sleep', 'wait', 'invoke')",
    f"CREATE INDEX IF NOT EXISTS inngest_step_waiting_end ON {STEPS} (ended_at) "
    "WHERE kind IN ('sleep', 'wait', 'invoke') AND ended_at IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS inngest_step_ended ON {STEPS} (ended_at) "
    "WHERE kind IN ('run', 'send') AND ended_at IS NOT NULL",
)
NAMES = {
    "postgresql": (
        "inngest_event_data_gin",
        "inngest_run_created_cover",
        "inngest_run_ended_cover",
        "inngest_run_started_cover",
        "inngest_step_waiting",
        "inngest_step_waiting_end",
        "inngest_step_ended",
    ),
    "other": (
        "inngest_run_created",
        "inngest_run_ended",
        "inngest_run_started",
        "inngest_step_waiting",
        "inngest_step_waiting_end",
        "inngest_step_ended",
    ),
}


def create(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRES if postgres else OTHERS:
        schema_editor.execute(statement)


def drop(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for name in NAMES["postgresql" if postgres else "other"]:
        concurrently = "CONCURRENTLY " if postgres else ""
        schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("django_inngest", "0001_initial")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
