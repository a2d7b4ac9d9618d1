"""The dashboard page: runs over time, durations and the backlog, drawn as SVG, per function."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from django_inngest.console.dashboard import WINDOWS, Dashboard, build_dashboard
from django_inngest.console.svg_charts import Series, line_chart, nice_duration_step
from django_inngest.console.timefmt import iso
from django_inngest.console.timeline import format_duration
from django_inngest.models import FunctionRegistration, FunctionRun

COLOURS = {
    "started": "#2563eb",
    "Completed": "#16a34a",
    "Failed": "#dc2626",
    "Cancelled": "#64748b",
    "p50": "#7c3aed",
    "p95": "#d97706",
    "queued": "#94a3b8",
    "waiting": "#7c3aed",
}


def seconds_text(value: float) -> str:
    return format_duration(timedelta(seconds=value))


def charts(board: Dashboard) -> list[Any]:
    ended = board.ended
    return [
        line_chart(
            chart_id="chart-runs",
            title=_("Runs started and ended, per %(bucket)s")
            % {"bucket": board.window.bucket_label},
            buckets=board.buckets,
            series=[
                Series(_("started"), board.started, COLOURS["started"]),
                *(
                    Series(_(status.lower()), ended.get(status, []), COLOURS[status])
                    for status in ("Completed", "Failed", "Cancelled")
                ),
            ],
        ),
        line_chart(
            chart_id="chart-durations",
            title=_("Run duration of completed and failed runs (p50, p95)"),
            buckets=board.buckets,
            series=[
                Series("p50", board.p50, COLOURS["p50"]),
                Series("p95", board.p95, COLOURS["p95"], dashed=True),
            ],
            format_value=seconds_text,
            nice_step=nice_duration_step,
        ),
        line_chart(
            chart_id="chart-backlog",
            title=_("Backlog: runs queued, and runs sleeping or waiting"),
            buckets=board.buckets,
            series=[
                Series(_("queued"), board.queued, COLOURS["queued"]),
                Series(_("waiting"), board.waiting, COLOURS["waiting"]),
            ],
        ),
    ]


def dashboard_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    window_key = request.GET.get("window", "day")
    if window_key not in WINDOWS:
        window_key = "day"
    function_ids = list(
        FunctionRegistration.objects.order_by("function_id").values_list("function_id", flat=True)
    )
    function_id = request.GET.get("function") or None
    if function_id not in function_ids:
        function_id = None
    board = build_dashboard(window_key, function_id)
    runs_url = reverse(f"{model_admin.admin_site.name}:django_inngest_functionrun_changelist")
    since = iso((timezone.now() - board.window.span).replace(microsecond=0))

    def runs_link(function: str, status: str | None = None) -> str:
        query = {"function__function_id__exact": function, "created_after": since}
        if status:
            query["status__exact"] = status
        return f"{runs_url}?{urlencode(query)}"

    for row in board.slowest:
        row.update(p50_text=seconds_text(row["p50"]), p95_text=seconds_text(row["p95"]))
        row["url"] = runs_link(row["function_id"])
    for row in board.failing:
        row.update(rate_text=f"{row['rate']:.0%}", url=runs_link(row["function_id"], "Failed"))
    overall = dict(board.overall)
    for key in ("p50", "p95"):
        overall[f"{key}_text"] = seconds_text(overall[key]) if overall.get(key) is not None else "—"
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": FunctionRun._meta,
        "title": _("Dashboard"),
        "board": board,
        "overall": overall,
        "charts": charts(board),
        "windows": [
            (
                w.key,
                w.label,
                f"?{urlencode({'window': w.key, **({'function': function_id} if function_id else {})})}",
            )
            for w in WINDOWS.values()
        ],
        "function_ids": function_ids,
        "selected_function": function_id,
        "window_key": window_key,
    }
    return TemplateResponse(request, "django_inngest/admin/dashboard.html", context)
