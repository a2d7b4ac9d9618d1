"""Building run rows and their cancel rules, and inserting them (shared by every way runs are
created: triggered, flow-controlled, invoked, rerun)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django_inngest import executor
from django_inngest.function import Function
from django_inngest.ids import new_ulid
from django_inngest.models import Event, FunctionRun, Listener, ListenerKind, RunStatus
from django_inngest.models.listeners import residual
from django_inngest.sql import insert_rows


def new_run(function: Function, event: Event, now: datetime, **fields: Any) -> FunctionRun:
    """An unsaved Queued run, ready now unless ``fields`` say otherwise."""
    values: dict[str, Any] = {
        "status": RunStatus.QUEUED,
        "ready_at": now,
        "dispatched_at": now,
        "created_at": now,
        **fields,
    }
    return FunctionRun(
        run_id=new_ulid(int(now.timestamp() * 1000)),
        function_id=function.id,
        event=event,
        **values,
    )


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


def insert(runs: list[FunctionRun], rules: list[Listener], now: datetime) -> None:
    """Insert runs and their rules (one statement each), and dispatch those ready now once
    the transaction commits."""
    insert_rows(runs)
    insert_rows(rules)
    ready = [run.run_id for run in runs if run.ready_at is not None and run.ready_at <= now]
    if ready:
        executor.dispatch_on_commit(ready)
