"""A database created by the first release (``0001_initial``) migrates forward without losing
anything, and its paused runs go on under the current engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from django_inngest import ContextSync, Inngest, TriggerEvent, cancel_run
from django_inngest.models import Event, FunctionRun, RunStatus, StepRun
from django_inngest.testing import drain

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = [("django_inngest", "0001_initial")]


def migrate(targets: list[tuple[str, str]]) -> Apps:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest() -> list[tuple[str, str]]:
    graph = MigrationExecutor(connection).loader.graph
    return [node for node in graph.leaf_nodes() if node[0] == "django_inngest"]


@pytest.fixture
def first_release() -> Iterator[Apps]:
    """The schema as ``0001_initial`` left it; the latest one is back after the test."""
    newest = latest()
    yield migrate(FIRST)
    migrate(newest)


def old_run(apps: Apps, function: Any, event: Any, **fields: Any) -> Any:
    now = timezone.now()
    return apps.get_model("django_inngest", "FunctionRun").objects.create(
        function=function, event=event, created_at=now, started_at=now, **fields
    )


def test_a_first_release_database_migrates_forward_and_its_runs_go_on(
    first_release: Apps, inngest: Inngest
) -> None:
    @inngest.create_function(fn_id="importer", trigger=TriggerEvent(event="old/import"))
    def importer(ctx: ContextSync) -> str:
        batch = ctx.step.run("batch-1", lambda: "never again")  # memoized before the upgrade
        ctx.step.sleep("pause", timedelta(seconds=30))
        return f"{batch} and done"

    apps, now = first_release, timezone.now()
    registration = apps.get_model("django_inngest", "FunctionRegistration").objects.create(
        function_id="test-app-importer", app_id="test-app", fn_id="importer", name="importer"
    )
    event = apps.get_model("django_inngest", "Event").objects.create(
        name="old/import", data={"importId": "imp-1"}, ts=1_700_000_000_000, received_at=now
    )
    sleeping = old_run(apps, registration, event, status="Running", wait_kind="sleep", ready_at=now)
    steps = apps.get_model("django_inngest", "StepRun").objects
    steps.create(
        run=sleeping, step_id="batch-1", position=0, kind="run", status="Completed",
        attempts=1, output="imported 500", started_at=now, ended_at=now,
    )  # fmt: skip
    steps.create(
        run=sleeping, step_id="pause", position=1, kind="sleep", status="Sleeping",
        attempts=0, started_at=now, wake_at=now,
    )  # fmt: skip
    waiting = old_run(
        apps, registration, event, status="Running", wait_kind="sleep",
        ready_at=now + timedelta(hours=1),
    )  # fmt: skip
    finished = old_run(
        apps, registration, event, status="Completed", ended_at=now, output={"rows": 500}
    )

    migrate(latest())

    stored = Event.objects.get(pk=event.pk)
    assert (stored.name, stored.data, stored.ts) == (
        "old/import",
        {"importId": "imp-1"},
        1_700_000_000_000,
    )
    done = FunctionRun.objects.get(pk=finished.pk)
    assert (done.status, done.output, done.gated) == (RunStatus.COMPLETED, {"rows": 500}, False)

    drain()
    resumed = FunctionRun.objects.get(pk=sleeping.pk)
    assert (resumed.status, resumed.output) == (RunStatus.COMPLETED, "imported 500 and done")
    assert list(StepRun.objects.filter(run=resumed).values_list("step_id", "status")) == [
        ("batch-1", "Completed"),
        ("pause", "Completed"),
    ]

    cancel_run(waiting.pk, reason="upgrade test")
    cancelled = FunctionRun.objects.get(pk=waiting.pk)
    assert (cancelled.status, cancelled.cancel_reason) == (RunStatus.CANCELLED, "upgrade test")
