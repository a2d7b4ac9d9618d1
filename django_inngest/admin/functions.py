"""Functions: their configuration, as synced from code, and how many runs each has per status."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from django_inngest.admin.base import EMPTY, STATUS_CSS, ReadOnlyAdmin, moment, pretty_json
from django_inngest.console.timefmt import iso
from django_inngest.definitions import TriggerCron
from django_inngest.flow_control.config import CONFIG_KEYS
from django_inngest.models import CronSchedule, FunctionRegistration, RunStatus

#: The registration keys of flow-control options (``FlowOptions.to_config``).
FLOW_KEYS = tuple(CONFIG_KEYS.values())


def count_field(status: str) -> str:
    return f"runs_{status.lower()}"


def status_counts() -> dict[str, Count]:
    # One aggregate per status over one GROUP BY: the list costs a single query, not one per row.
    return {
        count_field(status): Count("runs", filter=Q(runs__status=status)) for status in RunStatus
    }


def _count_column(status: RunStatus) -> Any:
    def column(self: FunctionRegistrationAdmin, function: FunctionRegistration) -> SafeString | int:
        return self.count_link(function, status)

    column.__name__ = count_field(status)
    return admin.display(description=status.label, ordering=count_field(status))(column)


@admin.register(FunctionRegistration)
class FunctionRegistrationAdmin(ReadOnlyAdmin):
    list_display = (
        "function_id",
        "name",
        "app_id",
        "is_active",
        *(count_field(status) for status in RunStatus),
    )
    list_filter = ("is_active", "app_id")
    search_fields = ("function_id", "name")
    change_form_template = "django_inngest/admin/function_change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "function_id",
                    "name",
                    "app_id",
                    "fn_id",
                    "is_active",
                    "created",
                    "updated",
                )
            },
        ),
        (gettext_lazy("Runs"), {"fields": ("counts_display",)}),
        (
            gettext_lazy("Configuration"),
            {
                "fields": (
                    "triggers_display",
                    "schedule_display",
                    "cancel_display",
                    "retries_display",
                    "flow_display",
                )
            },
        ),
        (
            gettext_lazy("Raw configuration"),
            {"classes": ("collapse",), "fields": ("config_display",)},
        ),
    )
    readonly_fields = (
        "created",
        "updated",
        "counts_display",
        "triggers_display",
        "cancel_display",
        "retries_display",
        "flow_display",
        "schedule_display",
        "config_display",
    )

    runs_queued = _count_column(RunStatus.QUEUED)
    runs_running = _count_column(RunStatus.RUNNING)
    runs_completed = _count_column(RunStatus.COMPLETED)
    runs_failed = _count_column(RunStatus.FAILED)
    runs_cancelled = _count_column(RunStatus.CANCELLED)

    def get_queryset(self, request: HttpRequest) -> QuerySet[FunctionRegistration]:
        return super().get_queryset(request).annotate(**status_counts())

    def runs_url(self, function: FunctionRegistration, status: str | None = None) -> str:
        query = {"function__function_id__exact": function.function_id}
        if status:
            query["status__exact"] = status
        changelist = reverse(f"{self.admin_site.name}:django_inngest_functionrun_changelist")
        return f"{changelist}?{urlencode(query)}"

    def count_link(self, function: FunctionRegistration, status: str) -> SafeString | int:
        count = getattr(function, count_field(status), 0)
        if not count:
            return 0
        return format_html('<a href="{}">{}</a>', self.runs_url(function, status), count)

    @admin.display(description=gettext_lazy("created at"))
    def created(self, function: FunctionRegistration) -> str:
        return moment(function.created_at)

    @admin.display(description=gettext_lazy("synced at"))
    def updated(self, function: FunctionRegistration) -> str:
        return moment(function.updated_at)

    @admin.display(description=gettext_lazy("runs per status"))
    def counts_display(self, function: FunctionRegistration) -> SafeString:
        cells = format_html_join(
            "",
            '<td><span class="inngest-badge inngest-badge--{}">{}</span> {}</td>',
            (
                (STATUS_CSS[status], status.label, self.count_link(function, status))
                for status in RunStatus
            ),
        )
        return format_html(
            '<table class="inngest-table inngest-counts"><tr>{}</tr></table>'
            '<p><a href="{}">{}</a></p>',
            cells,
            self.runs_url(function),
            gettext_lazy("All runs of this function"),
        )

    @admin.display(description=gettext_lazy("triggers"))
    def triggers_display(self, function: FunctionRegistration) -> SafeString | str:
        triggers = function.config.get("triggers") or []
        if not triggers:
            return EMPTY
        items = []
        for trigger in triggers:
            if "cron" in trigger:
                items.append(format_html("cron <code>{}</code>", trigger["cron"]))
            elif trigger.get("expression"):
                items.append(
                    format_html(
                        "event <code>{}</code> if <code>{}</code>",
                        trigger.get("event", ""),
                        trigger["expression"],
                    )
                )
            else:
                items.append(format_html("event <code>{}</code>", trigger.get("event", "")))
        return format_html(
            '<ul class="inngest-list">{}</ul>',
            format_html_join("", "<li>{}</li>", ((item,) for item in items)),
        )

    @admin.display(description=gettext_lazy("cancel on"))
    def cancel_display(self, function: FunctionRegistration) -> SafeString | str:
        rules = function.config.get("cancel") or []
        if not rules:
            return EMPTY
        items = format_html_join(
            "",
            "<li>event <code>{}</code>{}{}</li>",
            (
                (
                    rule.get("event", ""),
                    format_html(" if <code>{}</code>", rule["if"]) if rule.get("if") else "",
                    format_html(" within {}", rule["timeout"]) if rule.get("timeout") else "",
                )
                for rule in rules
            ),
        )
        return format_html('<ul class="inngest-list">{}</ul>', items)

    @admin.display(description=gettext_lazy("retries per step"))
    def retries_display(self, function: FunctionRegistration) -> Any:
        steps = function.config.get("steps") or {}
        attempts = (steps.get("step") or {}).get("retries", {}).get("attempts")
        return EMPTY if attempts is None else attempts

    @admin.display(description=gettext_lazy("flow control"))
    def flow_display(self, function: FunctionRegistration) -> SafeString | str:
        options = {k: v for k, v in function.config.items() if k in FLOW_KEYS}
        return pretty_json(options) if options else EMPTY

    @admin.display(description=gettext_lazy("next cron ticks"))
    def schedule_display(self, function: FunctionRegistration) -> SafeString | str:
        rows = []
        for schedule in CronSchedule.objects.filter(function=function):
            ticks = [schedule.next_tick_at]
            parsed = TriggerCron(cron=schedule.cron).schedule
            for _ in range(2):
                following = parsed.next_after(ticks[-1])
                if following is None:
                    break
                ticks.append(following)
            rows.append((schedule.cron, ", ".join(iso(t) for t in ticks)))
        if not rows:
            return EMPTY
        items = format_html_join("", "<li><code>{}</code>: {}</li>", rows)
        return format_html('<ul class="inngest-list">{}</ul>', items)

    @admin.display(description=gettext_lazy("configuration"))
    def config_display(self, function: FunctionRegistration) -> SafeString | str:
        return pretty_json(function.config)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: FunctionRegistration | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["runs_url"] = self.runs_url(obj)
            if self.has_cancel_permission(request):
                bulk = reverse(f"{self.admin_site.name}:django_inngest_cancellation_bulk_cancel")
                context["bulk_cancel_url"] = f"{bulk}?{urlencode({'function': obj.function_id})}"
        return super().render_change_form(request, context, add, change, form_url, obj)
