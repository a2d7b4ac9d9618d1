"""Runs: the list, the run page with its timeline and steps, and the cancel and rerun actions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_inngest.admin.base import (
    EMPTY,
    ReadOnlyAdmin,
    error_block,
    has_run_permission,
    html_list,
    moment,
    pretty_json,
    run_status,
    status_badge,
)
from django_inngest.engine.cancellation import (
    RunAlreadyEndedError,
    RunNotFoundError,
    cancel_run,
    cancel_runs,
)
from django_inngest.exceptions import InngestError
from django_inngest.ingest import runs as run_services
from django_inngest.models import CancelSource, FunctionRun, RunStatus
from django_inngest.timeline import build_timeline, format_duration

#: Shown on the run page; more steps than this are summarised rather than drawn.
MAX_TIMELINE_STEPS = 500


def cancel_reason(request: HttpRequest) -> str:
    return f"cancelled by {request.user}"


@admin.register(FunctionRun)
class FunctionRunAdmin(ReadOnlyAdmin):
    list_display = (
        "run_id",
        "function",
        "status_display",
        "created",
        "started",
        "ended",
        "duration",
    )
    list_filter = ("status", "function")
    list_select_related = ("function",)
    date_hierarchy = "created_at"
    # The search is exact (see get_search_results); listed here so the admin shows the box.
    search_fields = ("run_id",)
    search_help_text = gettext_lazy(
        "An exact run ID, or the internal or sender ID of the triggering event."
    )
    ordering = ("-created_at",)
    actions = ("cancel_selected", "rerun_selected")
    change_form_template = "django_inngest/admin/run_change_form.html"
    readonly_fields = (
        "function_link",
        "status_display",
        "event_link",
        "created",
        "started",
        "ended",
        "duration",
        "output_display",
        "error_display",
        "cancellation_link",
        "parent_link",
        "invoked_links",
        "original_link",
        "rerun_links",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets: list[tuple[Any, dict[str, Any]]] = [
            (
                None,
                {
                    "fields": (
                        "run_id",
                        "function_link",
                        "status_display",
                        "event_link",
                        "created",
                        "started",
                        "ended",
                        "duration",
                    )
                },
            ),
        ]
        # Sections that would only show dashes are left out: few runs are cancelled or related,
        # and an active run has no result yet.
        result: tuple[str, ...] = ("output_display", "error_display")
        if obj is not None:
            shown = {"output_display": obj.output is not None, "error_display": bool(obj.error)}
            result = tuple(name for name in result if shown[name])
        if result:
            fieldsets.append((gettext_lazy("Result"), {"fields": result}))
        if obj is not None and obj.status == RunStatus.CANCELLED:
            fieldsets.append(
                (
                    gettext_lazy("Cancellation"),
                    {
                        "fields": ("cancel_source", "cancel_reason", "cancellation_link"),
                    },
                )
            )
        if obj is not None and self._has_relations(obj):
            fieldsets.append(
                (
                    gettext_lazy("Related runs"),
                    {
                        "fields": ("parent_link", "invoked_links", "original_link", "rerun_links"),
                    },
                )
            )
        fieldsets.append(
            (
                gettext_lazy("Engine state"),
                {
                    "classes": ("collapse",),
                    "fields": (
                        "wait_kind",
                        "ready_at",
                        "dispatched_at",
                        "lease_owner",
                        "lease_expires_at",
                        "attempt",
                        "cancelled_signal_sent",
                    ),
                },
            )
        )
        return fieldsets

    def _has_relations(self, run: FunctionRun) -> bool:
        return bool(
            run.parent_run_id
            or run.original_run_id
            or run.invoked_runs.exists()
            or FunctionRun.objects.filter(original_run_id=run.run_id).exists()
        )

    # -- columns and fields -------------------------------------------------------------------
    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, run: FunctionRun) -> SafeString:
        return run_status(run)

    @admin.display(description=gettext_lazy("created at"), ordering="created_at")
    def created(self, run: FunctionRun) -> str:
        return moment(run.created_at)

    @admin.display(description=gettext_lazy("started at"), ordering="started_at")
    def started(self, run: FunctionRun) -> str:
        return moment(run.started_at)

    @admin.display(description=gettext_lazy("ended at"), ordering="ended_at")
    def ended(self, run: FunctionRun) -> str:
        return moment(run.ended_at)

    @admin.display(description=gettext_lazy("duration"))
    def duration(self, run: FunctionRun) -> str:
        if run.ended_at is None:
            return EMPTY
        return format_duration(run.ended_at - (run.started_at or run.created_at))

    @admin.display(description=gettext_lazy("function"))
    def function_link(self, run: FunctionRun) -> str:
        return self.link(run.function, run.function_id)

    @admin.display(description=gettext_lazy("triggering event"))
    def event_link(self, run: FunctionRun) -> str:
        event = run.event
        return format_html(
            '<a href="{}">{}</a> <code>{}</code>',
            self.url_for(event),
            event.name,
            event.internal_id,
        )

    @admin.display(description=gettext_lazy("output"))
    def output_display(self, run: FunctionRun) -> SafeString | str:
        return pretty_json(run.output)

    @admin.display(description=gettext_lazy("error"))
    def error_display(self, run: FunctionRun) -> SafeString | str:
        return error_block(run.error)

    @admin.display(description=gettext_lazy("bulk cancellation"))
    def cancellation_link(self, run: FunctionRun) -> str:
        return self.link(run.cancellation)

    @admin.display(description=gettext_lazy("invoked by"))
    def parent_link(self, run: FunctionRun) -> str:
        return self.link(run.parent_run, run.parent_run_id)

    @admin.display(description=gettext_lazy("invoked runs"))
    def invoked_links(self, run: FunctionRun) -> SafeString | str:
        children = run.invoked_runs.order_by("created_at")
        return html_list([self._run_item(child) for child in children])

    @admin.display(description=gettext_lazy("rerun of"))
    def original_link(self, run: FunctionRun) -> str:
        if not run.original_run_id:
            return EMPTY
        original = FunctionRun.objects.filter(pk=run.original_run_id).first()
        return self.link(original, run.original_run_id) if original else run.original_run_id

    @admin.display(description=gettext_lazy("reruns"))
    def rerun_links(self, run: FunctionRun) -> SafeString | str:
        reruns = FunctionRun.objects.filter(original_run_id=run.run_id).order_by("created_at")
        return html_list([self._run_item(rerun) for rerun in reruns])

    def _run_item(self, run: FunctionRun) -> SafeString:
        return format_html(
            "{} {} <small>{}</small>",
            self.link(run, run.run_id),
            status_badge(run.status, run.get_status_display()),
            run.function_id,
        )

    # -- search -------------------------------------------------------------------------------
    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[FunctionRun], search_term: str
    ) -> tuple[QuerySet[FunctionRun], bool]:
        # Exact lookups only: IDs are what people paste, and a substring search over every
        # run would scan the whole table. ULIDs are upper case; sender IDs are matched as typed.
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(run_id=term.upper()) | Q(event_id=term.upper()) | Q(event__external_id=term)
        return queryset.filter(match), False

    # -- actions ------------------------------------------------------------------------------
    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return has_run_permission(request, "rerun_functionrun")

    @admin.action(description=gettext_lazy("Cancel selected runs"), permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[FunctionRun]) -> None:
        run_ids = list(queryset.values_list("run_id", flat=True))
        outcome = cancel_runs(run_ids, source=CancelSource.ADMIN, reason=cancel_reason(request))
        self.report_cancel_outcome(request, outcome)

    def report_cancel_outcome(self, request: HttpRequest, outcome: dict[str, list[str]]) -> None:
        reports = (
            (
                "cancelled",
                messages.SUCCESS,
                "%(count)d run was cancelled.",
                "%(count)d runs were cancelled.",
            ),
            (
                "already_cancelled",
                messages.INFO,
                "%(count)d run was already cancelled.",
                "%(count)d runs were already cancelled.",
            ),
            (
                "ended",
                messages.WARNING,
                "%(count)d run had already ended and was not cancelled.",
                "%(count)d runs had already ended and were not cancelled.",
            ),
            (
                "missing",
                messages.ERROR,
                "%(count)d run no longer exists.",
                "%(count)d runs no longer exist.",
            ),
        )
        for key, level, singular, plural in reports:
            count = len(outcome.get(key, ()))
            if count:
                self.message_user(
                    request, ngettext(singular, plural, count) % {"count": count}, level
                )

    @admin.action(description=gettext_lazy("Rerun selected runs"), permissions=["rerun"])
    def rerun_selected(self, request: HttpRequest, queryset: QuerySet[FunctionRun]) -> None:
        started, failed = 0, []
        for run in queryset.select_related("event").order_by("created_at"):
            try:
                run_services.rerun(run)
            except InngestError as exc:
                failed.append(f"{run.run_id}: {exc}")
            else:
                started += 1
        if started:
            message = ngettext(
                "Started %(count)d new run.", "Started %(count)d new runs.", started
            ) % {"count": started}
            self.message_user(request, message, messages.SUCCESS)
        for problem in failed:
            self.message_user(
                request, _("Could not rerun %(problem)s") % {"problem": problem}, messages.ERROR
            )

    # -- the run page -------------------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        cancel = path(
            "<path:object_id>/cancel/",
            self.admin_site.admin_view(self.cancel_view),
            name=f"{opts.app_label}_{opts.model_name}_cancel",
        )
        # Before the defaults: their catch-all `<path:object_id>/` would swallow `…/cancel/`.
        return [cancel, *super().get_urls()]

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The run page's Cancel button posts here (``admin_view`` adds login and CSRF checks)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        run_id = unquote(object_id)
        try:
            result = cancel_run(run_id, source=CancelSource.ADMIN, reason=cancel_reason(request))
        except RunNotFoundError:
            self.message_user(
                request, _("No run has the ID %(id)s.") % {"id": run_id}, messages.ERROR
            )
            return HttpResponseRedirect(
                reverse(f"{self.admin_site.name}:{self._url_name('changelist')}")
            )
        except RunAlreadyEndedError as exc:
            self.message_user(
                request,
                _("This run had already ended (%(status)s), so it was not cancelled.")
                % {"status": exc.run.get_status_display()},
                messages.WARNING,
            )
        else:
            if result.cancelled:
                self.message_user(request, _("The run was cancelled."), messages.SUCCESS)
            else:
                self.message_user(request, _("The run was already cancelled."), messages.INFO)
        change_url = reverse(
            f"{self.admin_site.name}:{self._url_name('change')}", args=(object_id,)
        )
        return HttpResponseRedirect(change_url)

    def _url_name(self, view: str) -> str:
        opts = self.model._meta
        return f"{opts.app_label}_{opts.model_name}_{view}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[FunctionRun]:
        return super().get_queryset(request).select_related("function", "event")

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: FunctionRun | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self.run_page_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def run_page_context(self, request: HttpRequest, run: FunctionRun) -> dict[str, Any]:
        # One extra row tells whether there are more, so the common case needs no COUNT query.
        steps = list(run.steps.order_by("position")[: MAX_TIMELINE_STEPS + 1])
        hidden = run.steps.count() - MAX_TIMELINE_STEPS if len(steps) > MAX_TIMELINE_STEPS else 0
        steps = steps[:MAX_TIMELINE_STEPS]
        timeline = build_timeline(run, steps, timezone.now())
        return {
            "timeline": timeline,
            "timeline_more_steps": hidden,
            "step_rows": [
                {
                    "step": step,
                    "row": row,
                    "output": pretty_json(step.output) if step.output is not None else "",
                    "error": error_block(step.error) if step.error else "",
                    "started": moment(step.started_at),
                    "ended": moment(step.ended_at),
                }
                for step, row in zip(steps, timeline.rows[1:], strict=True)
            ],
            "can_cancel": not run.is_ended and self.has_cancel_permission(request),
            "cancel_url": reverse(
                f"{self.admin_site.name}:{self._url_name('cancel')}", args=(run.run_id,)
            ),
            "run_status": run_status(run),
            "event_url": self.url_for(run.event),
            "run_duration": (_("took %(duration)s") if run.is_ended else _("%(duration)s so far"))
            % {"duration": timeline.rows[0].duration},
        }
