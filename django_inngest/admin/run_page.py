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

from django.db.models import Count
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
from django_inngest.models import Event, FunctionRun, RunStatus, StepRun
from django_inngest.step_window import Gap, select_steps
from django_inngest.timeline import Row, build_timeline, format_duration, run_duration

#: How often an active run's page asks for a fresh fragment.
REFRESH_SECONDS = 3
#: The system event emitted for a cancelled run arrives at most this long after the cancel
#: (the signal is sent after commit; a crash is caught by the outbox sweep much later).
_SYSTEM_EVENT_WINDOW = timedelta(hours=1)
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
        items.append(_step_item(row, step))
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
    }


def _matched_event_url(row: Row, step: StepRun) -> str:
    outcome = row.outcome
    if outcome is None or not outcome.matched_event_id or step.ended_at is None:
        return ""
    # The payload carries the sender's ID when there was one, so look it up both ways; the
    # name index bounded by the step's end keeps this to a short backward index scan.
    event_id = outcome.matched_event_id
    candidates = Event.objects.filter(received_at__lte=step.ended_at)
    if outcome.matched_event_name:
        candidates = candidates.filter(name=outcome.matched_event_name)
    match = candidates.filter(internal_id=event_id).first() or (
        candidates.filter(external_id=event_id).order_by("-received_at").first()
    )
    return _url("event", "change", match.pk) if match else ""


def _cancellation(run: FunctionRun) -> dict[str, Any]:
    ended = run.ended_at
    info: dict[str, Any] = {
        "source": run.get_cancel_source_display() if run.cancel_source else EMPTY,
        "reason": run.cancel_reason or EMPTY,
        "when": time_tag(ended),
        "bulk_url": _url("cancellation", "change", run.cancellation_id)
        if run.cancellation_id
        else "",
        "bulk": run.cancellation,
    }
    if ended is None:
        return info
    if run.cancel_source == "event":
        info["cancel_event"] = _cancelling_event(run, ended)
    system = (
        Event.objects.filter(
            name="inngest/function.cancelled",
            received_at__gte=ended - _CANCEL_EVENT_WINDOW,
            received_at__lte=ended + _SYSTEM_EVENT_WINDOW,
            external_id=run.run_id,
        )
        .annotate(run_count=Count("runs"))
        .first()
    )
    if system is not None:
        info["system_event"] = system
        info["system_event_url"] = _url("event", "change", system.pk)
        info["cleanup_runs"] = list(
            system.runs.select_related("function").order_by("created_at")[:5]
        )
    return info


def _cancelling_event(run: FunctionRun, ended: datetime) -> dict[str, Any] | None:
    """The cancel_on event: the engine does not record it, so it is found by name and time.

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
    return {"event": event, "url": _url("event", "change", event.pk)}


def _step_item(row: Row, step: StepRun) -> StepItem:
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
    )
