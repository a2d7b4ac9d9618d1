"""Ending a run: the one place that ends runs and sends what follows an end.

Callers hold the run's row lock inside a transaction and have checked that the run is still
active (or, for a batch of completions, write conditionally on each lease), so when completion
and cancellation race exactly one of them gets here.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Unpack

from django_inngest import database, signals
from django_inngest.engine import emit, gates, system_events, wakeups
from django_inngest.models import EndDetails, FunctionRun, Listener, RunStatus

logger = logging.getLogger(__name__)


def finish_run(
    run: FunctionRun, status: RunStatus, now: datetime, **details: Unpack[EndDetails]
) -> None:
    """End one locked, active run and send what follows."""
    FunctionRun.objects.end(run, status, now, **details)
    after_runs_ended([run], with_listeners=[run.run_id])
    if status == RunStatus.FAILED:
        error = run.error or {}
        # One line: the rest of a long message (an expression's caret, say) is in run.error.
        message = str(error.get("message") or "").strip().split("\n", 1)[0]
        logger.error(
            "Run failed run_id=%s function=%s error=%s: %s",
            run.run_id,
            run.function_id,
            error.get("name"),
            message,
        )


def after_runs_ended(runs: list[FunctionRun], *, with_listeners: list[str]) -> None:
    """What follows a terminal write, for a batch of runs in the caller's transaction: their
    listeners go, their system events are sent (one insert and one listener lookup for the
    batch), invoking parents are resumed, and the signals are sent after commit."""
    if not runs:
        return
    # Pending waits, cancel rules and timers die with the run.
    if with_listeners:
        Listener.objects.filter(run_id__in=with_listeners).delete()
    payloads = [p for run in runs for p in system_events.terminal_events(run)]
    if payloads:
        emit.send(payloads, system=True)
    gates.release([run for run in runs if run.gated])
    for run in runs:
        if run.parent_run_id:
            wakeups.resolve_invoke(run.parent_run_id, run.parent_step_id, run)
        logger.info(
            "Run ended run_id=%s function=%s status=%s", run.run_id, run.function_id, run.status
        )

    def after_commit() -> None:
        for run in runs:
            signals.function_finished.send_robust(sender=FunctionRun, run=run)
            if run.status == RunStatus.CANCELLED:
                send_cancelled_signal(run)

    database.on_commit(after_commit)


def send_cancelled_signal(run: FunctionRun) -> None:
    for receiver, response in signals.function_cancelled.send_robust(
        sender=FunctionRun,
        run=run,
        source=run.cancel_source,
        reason=run.cancel_reason,
        actor=run.cancel_actor,
        cancel_event_id=run.cancel_event_id,
    ):
        if isinstance(response, Exception):
            logger.error(
                "function_cancelled receiver %r failed for run_id=%s",
                receiver,
                run.run_id,
                exc_info=response,
            )


def emit_cancelled_event(run: FunctionRun) -> bool:
    """Emit ``inngest/function.cancelled`` once for a run (the outbox flag guards repeats)."""
    if not system_events.emits_system_events(run):
        FunctionRun.objects.mark_cancel_signal_sent(run.run_id)
        return False
    with database.atomic():
        if not FunctionRun.objects.mark_cancel_signal_sent(run.run_id):
            return False
        emit.send([system_events.cancelled_event(run)], system=True)
    return True
