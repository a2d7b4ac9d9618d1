"""Creating runs: from a triggering event, from ``step.invoke`` and from a rerun."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from django_inngest import database, executor
from django_inngest.exceptions import InngestError
from django_inngest.function import Function
from django_inngest.ids import new_ulid
from django_inngest.ingest import triggers
from django_inngest.models import Event, FunctionRun, Listener, ListenerKind, RunStatus
from django_inngest.models.listeners import residual
from django_inngest.registrations import ensure_registered
from django_inngest.registry import registry
from django_inngest.sql import insert_rows


def start_triggered_runs(
    events: Sequence[Event], payloads: Sequence[dict[str, Any]], now: datetime
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
            run = _new_run(function, event, now)
            created.append(run)
            rules += cancel_listeners(run, function, payload, now)
    if created:
        for function in functions.values():
            ensure_registered(function)
        _insert(created, rules)
    return created


def _insert(runs: list[FunctionRun], rules: list[Listener]) -> None:
    insert_rows(runs)
    insert_rows(rules)
    executor.dispatch_on_commit([run.run_id for run in runs])


def _new_run(function: Function, event: Event, now: datetime, **fields: Any) -> FunctionRun:
    return FunctionRun(
        run_id=new_ulid(int(now.timestamp() * 1000)),
        function_id=function.id,
        event=event,
        status=RunStatus.QUEUED,
        ready_at=now,
        dispatched_at=now,
        created_at=now,
        **fields,
    )


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
    run = _new_run(
        function,
        event,
        now,
        parent_run=parent,
        parent_step_id=parent_step_id,
        original_run_id=original_run_id,
    )
    ensure_registered(function)
    _insert([run], cancel_listeners(run, function, event.as_payload(), now))
    return run


def rerun(run: FunctionRun) -> FunctionRun:
    """A new run from the same triggering event, as Inngest's rerun does."""
    function = registry.get(run.function_id)
    if function is None:
        raise InngestError(f"function {run.function_id!r} is no longer defined in code")
    with database.atomic():
        return create_run(function, run.event, timezone.now(), original_run_id=run.run_id)


def cancel_listeners(
    run: FunctionRun, function: Function, trigger_payload: dict[str, Any], now: datetime
) -> list[Listener]:
    """The run's ``cancel_on`` rules as unsaved rows (the caller inserts a batch at once)."""
    rows = []
    for rule in function.cancel:
        expression = residual(rule.expression, trigger_payload)
        if expression == "false":
            continue  # this trigger can never be cancelled by that rule (Inngest skips it too)
        rows.append(
            Listener.build(ListenerKind.CANCEL, run, rule.event, expression, now + rule.window, now)
        )
    return rows
