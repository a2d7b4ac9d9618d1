"""The run page's live part: summary, timeline and steps, rendered whole or as a fragment.

The same context feeds the full page and ``<run>/live/``, the fragment that the page's script
fetches every few seconds while the run is Queued or Running and swaps in place (no reload, so
no flicker and no lost scroll position); the fragment says when the run has ended, and the
script stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from django_inngest.admin.base import (
    EMPTY,
    error_block,
    pretty_json,
    run_status,
    time_tag,
)
from django_inngest.console.step_window import Gap, select_steps
from django_inngest.console.timeline import Row, build_timeline, format_duration, run_duration
from django_inngest.function import CANCELLED_EVENT, FAILED_EVENT
from django_inngest.models import Event, FunctionRun, RunStatus, StepKind, StepRun

#: How often an active run's page asks for a fresh fragment.
REFRESH_SECONDS = 3
#: A cancel_on event is stored in the same transaction that cancels, a few ms before the end.
_CANCEL_EVENT_WINDOW = timedelta(seconds=5)


@dataclass(frozen=True)
class StepItem:
    row: Row
    step: StepRun
    started: SafeString | str
    #: The step's end, or the run's when the run's end interrupted it.
    ended: SafeString | str
    output: SafeString | str
    error: SafeString | str
    #: A pending sleep's or wait's wake-up.
    until: SafeString | str = ""
    matched_event_url: str = ""
    invoked_run_url: str = ""
    is_gap = False


@dataclass(frozen=True)
class GapItem:
    gap: Gap
    is_gap = True


def _url(model: str, view: str, *args: Any) -> str:
    return reverse(f"admin:django_inngest_{model}_{view}", args=args)


def live_context(request: HttpRequest, run: FunctionRun, *, show_all: bool) -> dict[str, Any]:
    now = timezone.now()
    selection = select_steps(run, show_all=show_all)
    timeline = build_timeline(run, selection.steps, now)
    items: list[StepItem | GapItem] = []
    if selection.leading_gap:
        items.append(GapItem(selection.leading_gap))
    for step, row in zip(selection.steps, timeline.rows[1:], strict=True):
        items.append(_step_item(run, row, step))
        if step.position in selection.gaps_after:
            items.append(GapItem(selection.gaps_after[step.position]))
    duration = format_duration(run_duration(run, now))
    return {
        "run": run,
        "run_is_active": not run.is_ended,
        "refresh_seconds": REFRESH_SECONDS,
        "run_status": run_status(run),
        "timeline": timeline,
        "step_items": items,
        "steps_total": selection.total,
        "steps_hidden": selection.hidden,
        "hidden_statuses": sorted(selection.hidden_statuses.items()),
        "show_all": show_all,
        "run_duration": duration,
        "run_duration_text": (_("took %(d)s") if run.is_ended else _("%(d)s so far"))
        % {"d": duration},
        "queued_for": format_duration((run.started_at or run.ended_at or now) - run.created_at),
        "times": {
            "created": time_tag(run.created_at),
            "started": time_tag(run.started_at),
            "ended": time_tag(run.ended_at),
        },
        "function_url": _url("functionregistration", "change", run.function.pk),
        "event_url": _url("event", "change", run.event_id),
        "error": error_block(run.error) if run.error else "",
        "output": pretty_json(run.output) if run.output is not None else "",
        "cancellation": _cancellation(run) if run.status == RunStatus.CANCELLED else None,
        "failure": system_event_of(run, FAILED_EVENT) if run.status == RunStatus.FAILED else None,
    }


def _matched_event_url(row: Row, step: StepRun) -> str:
    outcome = row.outcome
    if step.matched_event_id:
        # Stored when the wait resolved; the event may have been pruned since.
        found = Event.objects.filter(pk=step.matched_event_id).exists()
        return _url("event", "change", step.matched_event_id) if found else ""
    if outcome is None or not outcome.matched_event_id or step.ended_at is None:
        return ""
    # Steps that resolved before the engine stored the event's ID: the payload carries the
    # sender's ID when there was one, so look it up both ways; the name index bounded by the
    # step's end keeps this to a short backward index scan.
    event_id = outcome.matched_event_id
    candidates = Event.objects.filter(received_at__lte=step.ended_at)
    if outcome.matched_event_name:
        candidates = candidates.filter(name=outcome.matched_event_name)
    match = candidates.filter(internal_id=event_id).first() or (
        candidates.filter(external_id=event_id).order_by("-received_at").first()
    )
    return _url("event", "change", match.pk) if match else ""


def system_event_of(run: FunctionRun, name: str) -> dict[str, Any] | None:
    """The run's ``inngest/function.cancelled`` or ``function.failed`` event (its sender ID is
    the run ID: one partial-index lookup) and the runs it started (cleanups, ``on_failure``)."""
    # Unordered (there is at most one): with the model's ORDER BY, SQLite's planner would take
    # the name index and walk every such event instead of this partial index.
    found = Event.objects.filter(name=name, external_id=run.run_id).order_by()[:1]
    event = next(iter(found), None)
    if event is None:
        return None
    started = list(event.runs.select_related("function").order_by("created_at")[:5])
    return {
        "event": event,
        "run_count": event.runs.count(),
        "url": _url("event", "change", event.pk),
        "runs": [{"run": r, "url": _url("functionrun", "change", r.pk)} for r in started],
    }


def _cancellation(run: FunctionRun) -> dict[str, Any]:
    ended = run.ended_at
    info: dict[str, Any] = {
        "source": run.get_cancel_source_display() if run.cancel_source else EMPTY,
        "reason": run.cancel_reason or EMPTY,
        "actor": run.cancel_actor or EMPTY,
        "when": time_tag(ended),
        "bulk_url": _url("cancellation", "change", run.cancellation_id)
        if run.cancellation_id
        else "",
        "bulk": run.cancellation,
    }
    if run.cancel_event_id:
        event = Event.objects.filter(pk=run.cancel_event_id).first()
        info["cancel_event"] = {
            "event": event,
            "event_id": run.cancel_event_id,
            "url": _url("event", "change", event.pk) if event else "",
        }
    elif run.cancel_source == "event" and ended is not None:
        info["cancel_event"] = _guess_cancelling_event(run, ended)
    info["system"] = system_event_of(run, CANCELLED_EVENT)
    return info


def _guess_cancelling_event(run: FunctionRun, ended: datetime) -> dict[str, Any] | None:
    """The cancel_on event of a run cancelled before the engine stored its ID, found by name
    and time.

    A cancel by event happens inside the transaction that stores the event, so the newest event
    named in the function's cancel rules received just before the run ended is the one.
    """
    names = [rule.get("event") for rule in run.function.config.get("cancel") or []]
    names = [name for name in names if name]
    if not names:
        return None
    event = (
        Event.objects.filter(
            name__in=names, received_at__lte=ended, received_at__gte=ended - _CANCEL_EVENT_WINDOW
        )
        .order_by("-received_at")
        .first()
    )
    if event is None:
        return None
    return {
        "event": event,
        "event_id": event.pk,
        "url": _url("event", "change", event.pk),
        "guessed": True,
    }


def _invoked_run_url(run: FunctionRun, step: StepRun) -> str:
    """The child run a ``step.invoke`` started (the parent FK's index answers it)."""
    child = (
        FunctionRun.objects.filter(parent_run_id=run.run_id, parent_step_id=step.step_id)
        .values_list("run_id", flat=True)
        .first()
    )
    return _url("functionrun", "change", child) if child else ""


def _step_item(run: FunctionRun, row: Row, step: StepRun) -> StepItem:
    outcome = row.outcome
    return StepItem(
        row=row,
        step=step,
        started=time_tag(step.started_at),
        ended=time_tag(outcome.ended_at if outcome else step.ended_at),
        output=pretty_json(step.output) if step.output is not None else "",
        error=error_block(step.error) if step.error else "",
        until=time_tag(step.wake_at) if step.wake_at else "",
        matched_event_url=_matched_event_url(row, step),
        invoked_run_url=_invoked_run_url(run, step) if step.kind == StepKind.INVOKE else "",
    )
