"""Steps, one row per memoized step; mostly reached from a run's page."""

from __future__ import annotations

from django.contrib import admin
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from django_inngest.admin.base import ReadOnlyAdmin, error_block, moment, pretty_json, status_badge
from django_inngest.models import StepRun


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyAdmin):
    list_display = (
        "step_name",
        "run_link",
        "kind",
        "status_display",
        "attempts",
        "started",
        "ended",
    )
    list_filter = ("kind", "status")
    list_select_related = ("run",)
    search_fields = ("=run__run_id", "step_id", "display_name")
    date_hierarchy = "started_at"
    fields = (
        "run_link",
        "step_id",
        "display_name",
        "position",
        "kind",
        "status",
        "attempts",
        "started",
        "ended",
        "wakes",
        "output_display",
        "error_display",
        "attempt_log_display",
    )
    readonly_fields = (
        "run_link",
        "started",
        "ended",
        "wakes",
        "output_display",
        "error_display",
        "attempt_log_display",
    )

    @admin.display(description=gettext_lazy("step"), ordering="step_id")
    def step_name(self, step: StepRun) -> str:
        return step.name

    @admin.display(description=gettext_lazy("run"), ordering="run")
    def run_link(self, step: StepRun) -> str:
        return self.link(step.run, step.run_id)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, step: StepRun) -> SafeString:
        return status_badge(step.status, step.get_status_display())

    @admin.display(description=gettext_lazy("started at"), ordering="started_at")
    def started(self, step: StepRun) -> str:
        return moment(step.started_at)

    @admin.display(description=gettext_lazy("ended at"), ordering="ended_at")
    def ended(self, step: StepRun) -> str:
        return moment(step.ended_at)

    @admin.display(description=gettext_lazy("wakes at"))
    def wakes(self, step: StepRun) -> str:
        return moment(step.wake_at)

    @admin.display(description=gettext_lazy("output"))
    def output_display(self, step: StepRun) -> SafeString | str:
        return pretty_json(step.output)

    @admin.display(description=gettext_lazy("error"))
    def error_display(self, step: StepRun) -> SafeString | str:
        return error_block(step.error)

    @admin.display(description=gettext_lazy("attempt log"))
    def attempt_log_display(self, step: StepRun) -> SafeString | str:
        return pretty_json(step.attempt_log)
