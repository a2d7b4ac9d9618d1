"""Creating runs: from a triggering event, from ``step.invoke`` and from a rerun."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_inngest import listeners, triggers
from django_inngest.function import Function
from django_inngest.ids import new_ulid
from django_inngest.models import Event, FunctionRun, RunStatus
from django_inngest.registrations import ensure_registered


def start_triggered_runs(event: Event, now: datetime) -> list[FunctionRun]:
    """One Queued run per active function the event triggers, dispatched on commit."""
    payload = event.as_payload()
    created = [
        create_run(function, event, now, payload=payload)
        for function in triggers.functions_triggered_by(payload)
    ]
    return created


def create_run(
    function: Function,
    event: Event,
    now: datetime,
    *,
    payload: dict[str, Any] | None = None,
    parent: FunctionRun | None = None,
    parent_step_id: str = "",
    original_run_id: str = "",
) -> FunctionRun:
    ensure_registered(function)
    run = FunctionRun.objects.create(
        run_id=new_ulid(int(now.timestamp() * 1000)),
        function_id=function.id,
        event=event,
        status=RunStatus.QUEUED,
        ready_at=now,
        dispatched_at=now,
        created_at=now,
        parent_run=parent,
        parent_step_id=parent_step_id,
        original_run_id=original_run_id,
    )
    listeners.create_cancel_listeners(run, function, payload or event.as_payload(), now)
    dispatch_on_commit([run.run_id])
    return run


def dispatch_on_commit(run_ids: list[str]) -> None:
    """Wake workers once the run rows are visible; the executor's poll covers a lost wake-up."""
    from django_inngest import executor

    transaction.on_commit(lambda: executor.dispatch(run_ids))


def rerun(run: FunctionRun) -> FunctionRun:
    """A new run from the same triggering event, as Inngest's rerun does."""
    from django_inngest.registry import registry

    function = registry.get(run.function_id)
    if function is None:
        from django_inngest.exceptions import InngestError

        raise InngestError(f"function {run.function_id!r} is no longer defined in code")
    with transaction.atomic():
        return create_run(function, run.event, timezone.now(), original_run_id=run.run_id)
