"""Creating runs: from a triggering event, from ``step.invoke`` and from a rerun."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from django_inngest import database
from django_inngest.exceptions import InngestError
from django_inngest.function import Function
from django_inngest.ingest import flow, run_rows, triggers
from django_inngest.models import Event, FunctionRun, Listener
from django_inngest.registrations import ensure_registered
from django_inngest.registry import registry


def start_triggered_runs(
    events: Sequence[Event],
    payloads: Sequence[dict[str, Any]],
    now: datetime,
    supersede: flow.Supersede,
) -> list[FunctionRun]:
    """One Queued run per active function each event (with its payload) triggers, dispatched
    on commit.

    A batch of events costs one INSERT for the runs, one for their cancel rules and one
    dispatch for all of them, whatever its size.
    """
    created: list[FunctionRun] = []
    rules: list[Listener] = []
    functions: dict[str, Function] = {}
    for event, payload in zip(events, payloads, strict=True):
        for function in triggers.functions_triggered_by(payload):
            functions[function.id] = function
            if flow.is_controlled(function):
                started = flow.start(function, event, payload, now, supersede)
            else:
                started = [run_rows.new_run(function, event, now)]
            for run in started:
                created.append(run)
                rules += run_rows.cancel_listeners(run, function, payload, now)
    if created:
        for function in functions.values():
            ensure_registered(function)
        run_rows.insert(created, rules, now)
    return created


def create_run(
    function: Function,
    event: Event,
    now: datetime,
    *,
    parent: FunctionRun | None = None,
    parent_step_id: str = "",
    original_run_id: str = "",
) -> FunctionRun:
    """One run (``step.invoke``, rerun), dispatched on commit."""
    run = run_rows.new_run(
        function,
        event,
        now,
        parent_run=parent,
        parent_step_id=parent_step_id,
        original_run_id=original_run_id,
        **flow.gated_fields(function, event.as_payload(), now),
    )
    ensure_registered(function)
    run_rows.insert([run], run_rows.cancel_listeners(run, function, event.as_payload(), now), now)
    return run


def rerun(run: FunctionRun) -> FunctionRun:
    """A new run from the same triggering event, as Inngest's rerun does."""
    function = registry.get(run.function_id)
    if function is None:
        raise InngestError(f"function {run.function_id!r} is no longer defined in code")
    with database.atomic():
        return create_run(function, run.event, timezone.now(), original_run_id=run.run_id)
