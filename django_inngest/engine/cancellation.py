"""Cancelling runs: the one service the admin, the REST API, the CLI and ``cancel_on`` share."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from django_inngest import database, expressions
from django_inngest.engine.lifecycle import finish_run
from django_inngest.exceptions import ExpressionError, InngestError
from django_inngest.models import (
    Cancellation,
    CancelSource,
    Event,
    FunctionRegistration,
    FunctionRun,
    RunStatus,
    StepRun,
)

logger = logging.getLogger(__name__)
#: Inngest lets `started_before` be at most this far in the future.
MAX_FUTURE_SKEW = timedelta(seconds=5)
#: The actor recorded when the REST API's caller presented the signing key.
SIGNING_KEY_ACTOR = "signing key"
#: The actor column's width.
MAX_ACTOR_LENGTH = 255
#: The longest reason the admin, the REST API and the CLI accept.
MAX_REASON_LENGTH = 1000


class RunNotFoundError(InngestError):
    """No run has that ID."""


class RunAlreadyEndedError(InngestError):
    """The run ended before the cancel arrived (Inngest: "cannot cancel an ended run")."""

    def __init__(self, run: FunctionRun) -> None:
        super().__init__(f"Cannot cancel an ended run: {run.run_id} is {run.status}")
        self.run = run


class BulkCancellationError(InngestError):
    """A bulk cancellation request is invalid; the message names the field."""


@dataclass(frozen=True)
class CancelResult:
    run: FunctionRun
    #: False when the run had already been cancelled (cancelling is idempotent).
    cancelled: bool


def cancel_run(
    run_id: str,
    *,
    source: str = CancelSource.PYTHON,
    reason: str = "",
    actor: str = "",
    cancelled_by_event: Event | None = None,
    cancellation: Cancellation | None = None,
) -> CancelResult:
    """Cancel one run now. Raises RunNotFoundError, or RunAlreadyEndedError for an ended run.

    ``reason`` is the operator's words, ``actor`` who asked (a Django user name, "signing key",
    the CLI's OS user); ``cancelled_by_event`` is the ``cancel_on`` event, whose internal ID is
    stored on the run (its actor is that event). A bulk ``cancellation`` lends its own reason
    and actor. All three are stored on the run, sent with the ``function_cancelled`` signal
    and added to ``inngest/function.cancelled`` under ``data._inngest``.

    A queued run never starts; a sleeping or waiting run ends now and its timers and waits are
    removed; a step in flight finishes but its result is dropped and no further step runs. The
    ``function_cancelled`` signal is sent once, after commit.
    """
    if cancellation is not None:
        reason = cancellation.reason or reason
        actor = actor or cancellation.actor
    event_id = None
    if cancelled_by_event is not None:
        event_id = cancelled_by_event.internal_id
        actor = actor or f"event {event_id}"
    with database.atomic():
        run = FunctionRun.objects.locked(run_id)
        if run is None:
            raise RunNotFoundError(f"Unable to load function run: {run_id}")
        if run.status == RunStatus.CANCELLED:
            return CancelResult(run, cancelled=False)
        if run.is_ended:
            raise RunAlreadyEndedError(run)
        now = timezone.now()
        finish_run(
            run,
            RunStatus.CANCELLED,
            now,
            cancel_source=source,
            cancel_reason=reason,
            cancel_actor=actor[:MAX_ACTOR_LENGTH],
            cancel_event_id=event_id,
            cancellation_id=cancellation.pk if cancellation else None,
        )
        # One indexed UPDATE: the sleep, wait or step the cancel cut short ends with the run.
        StepRun.objects.close_interrupted(run.run_id, now)
    logger.info(
        "Run cancelled run_id=%s source=%s actor=%s reason=%s", run_id, source, actor, reason
    )
    return CancelResult(run, cancelled=True)


def resolve_function(app_id: str, function_id: str) -> FunctionRegistration:
    """Find a function by Inngest's local ID (``function_id``) within ``app_id``; the composite
    ``app-fn`` form is accepted too, as Inngest's v2 API does."""
    found = FunctionRegistration.objects.filter(
        Q(app_id=app_id, fn_id=function_id) | Q(function_id=function_id)
    ).first()
    if found is None:
        raise BulkCancellationError(f"function_id: no function {function_id!r} in app {app_id!r}")
    return found


def create_bulk_cancellation(
    *,
    app_id: str,
    function_id: str,
    started_before: datetime,
    started_after: datetime | None = None,
    if_exp: str | None = None,
    name: str = "",
    source: str = CancelSource.API,
    reason: str = "",
    actor: str = "",
) -> tuple[Cancellation, int]:
    """Record a bulk cancellation and sweep the matching runs now; returns (record, cancelled).

    Runs created later inside the window, or missed by the sweep, are caught by the check
    every worker makes before each step.
    """
    if not app_id:
        raise BulkCancellationError("app_id is required")
    if not function_id:
        raise BulkCancellationError("function_id is required")
    now = timezone.now()
    if started_before > now + MAX_FUTURE_SKEW:
        raise BulkCancellationError("started_before must be at most 5 seconds in the future")
    if started_after is not None and started_after >= started_before:
        raise BulkCancellationError("started_after must be earlier than started_before")
    if if_exp:
        try:
            expressions.validate(if_exp, variables=("event",))
        except ExpressionError as exc:
            raise BulkCancellationError(f"invalid expression: {exc.message}") from exc
    function = resolve_function(app_id, function_id)
    cancellation = Cancellation.objects.create(
        name=name,
        app_id=app_id,
        function=function,
        started_after=started_after,
        started_before=started_before,
        if_exp=if_exp or "",
        source=source,
        created_at=now,
        reason=reason,
        actor=actor[:MAX_ACTOR_LENGTH],
    )
    return cancellation, sweep(cancellation)


def matching_runs(cancellation: Cancellation) -> list[FunctionRun]:
    """Active runs of the function created in the window whose trigger satisfies ``if``."""
    runs = (
        FunctionRun.objects.active()
        .select_related("event")
        .filter(
            function__function_id=cancellation.function_id,
            created_at__lte=cancellation.started_before,
        )
    )
    if cancellation.started_after is not None:
        runs = runs.filter(created_at__gte=cancellation.started_after)
    return [
        run for run in runs.order_by("created_at") if cancellation.matches(run.event.as_payload())
    ]


def sweep(cancellation: Cancellation) -> int:
    """Inngest's eager sweep: cancel every matching run now."""
    count = 0
    for run in matching_runs(cancellation):
        try:
            result = cancel_run(
                run.run_id,
                source=CancelSource.BULK,
                reason=f"bulk cancellation {cancellation.pk}",
                cancellation=cancellation,
            )
        except RunAlreadyEndedError:
            continue  # it finished while we swept
        count += int(result.cancelled)
    return count


def cancel_runs(
    run_ids: list[str], *, source: str, reason: str = "", actor: str = ""
) -> dict[str, list[str]]:
    """Cancel several runs one by one (admin action, CLI); reports each outcome."""
    outcome: dict[str, list[str]] = {
        "cancelled": [],
        "already_cancelled": [],
        "ended": [],
        "missing": [],
    }
    for run_id in run_ids:
        try:
            result = cancel_run(run_id, source=source, reason=reason, actor=actor)
        except RunNotFoundError:
            outcome["missing"].append(run_id)
        except RunAlreadyEndedError:
            outcome["ended"].append(run_id)
        else:
            outcome["cancelled" if result.cancelled else "already_cancelled"].append(run_id)
    return outcome


def cancel_overdue(now: datetime, limit: int = 100) -> int:
    """Cancel active runs past a start or finish timeout (``Timeouts``), through this one
    service: source "timeout", and ``inngest/function.cancelled`` as for every cancel."""
    count = 0
    for run in FunctionRun.objects.overdue(now).order_by("created_at")[:limit]:
        late_start = run.started_at is None and run.start_by is not None and run.start_by < now
        which = "start" if late_start else "finish"
        try:
            result = cancel_run(
                run.run_id, source=CancelSource.TIMEOUT, reason=f"timeouts.{which} passed"
            )
        except RunAlreadyEndedError:
            continue  # it ended as the timeout passed
        count += int(result.cancelled)
    return count
