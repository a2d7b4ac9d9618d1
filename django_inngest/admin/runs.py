"""Runs: the list, the run page with its timeline and steps, and the cancel and rerun actions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_inngest.admin.base import (
    EMPTY,
    ReadOnlyAdmin,
    error_block,
    error_cell,
    has_run_permission,
    html_list,
    moment,
    pretty_json,
    run_status,
    status_badge,
)
from django_inngest.admin.cancel_confirm import CancelConfirmationMixin
from django_inngest.admin.dashboard import dashboard_view
from django_inngest.admin.filters import CreatedRangeFilter
from django_inngest.admin.run_page import live_context
from django_inngest.console.payload_search import (
    PayloadSearchError,
    looks_like_payload_search,
    parse_payload_search,
    payload_q,
)
from django_inngest.console.timeline import format_duration, run_duration
from django_inngest.exceptions import InngestError
from django_inngest.ingest import runs as run_services
from django_inngest.models import FunctionRun, RunStatus

#: The "Engine state" fieldset: display methods that format times like the rest of the page.
ENGINE_STATE_FIELDS = {
    "wait_kind": "engine_wait_kind",
    "ready_at": "engine_ready_at",
    "dispatched_at": "engine_dispatched_at",
    "lease_owner": "engine_lease_owner",
    "lease_expires_at": "engine_lease_expires_at",
    "attempt": "engine_attempt",
    "cancelled_signal_sent": "engine_cancelled_signal_sent",
}


@admin.register(FunctionRun)
class FunctionRunAdmin(CancelConfirmationMixin, ReadOnlyAdmin):
    list_display = (
        "run_id",
        "function",
        "status_display",
        "started",
        "ended",
        "duration",
        "error_summary",
    )
    list_filter = ("status", CreatedRangeFilter, "function")
    list_select_related = ("function",)
    # The search is exact (see get_search_results); listed here so the admin shows the box.
    search_fields = ("run_id",)
    search_help_text = gettext_lazy(
        "An exact run ID, the internal or sender ID of the triggering event, or a value in "
        "the event's payload: importId=abc (also data.user.id:42; several terms must all match)."
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
        *ENGINE_STATE_FIELDS.values(),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # The summary, the error, the output and the cancellation are drawn above the timeline
        # by the run page's own template (they refresh with it); the fieldsets hold the rest.
        fieldsets: list[tuple[Any, dict[str, Any]]] = []
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
                {"classes": ("collapse",), "fields": tuple(ENGINE_STATE_FIELDS.values())},
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
        return format_duration(run_duration(run, run.ended_at))

    @admin.display(description=gettext_lazy("error"))
    def error_summary(self, run: FunctionRun) -> SafeString | str:
        return error_cell(run.error) if run.status == RunStatus.FAILED else EMPTY

    # -- engine state: the same time format as everything else ------------------------------
    @admin.display(description=gettext_lazy("blocked on"))
    def engine_wait_kind(self, run: FunctionRun) -> str:
        return str(run.get_wait_kind_display()) if run.wait_kind else EMPTY

    @admin.display(description=gettext_lazy("ready at"))
    def engine_ready_at(self, run: FunctionRun) -> str:
        return moment(run.ready_at)

    @admin.display(description=gettext_lazy("last dispatched at"))
    def engine_dispatched_at(self, run: FunctionRun) -> str:
        return moment(run.dispatched_at)

    @admin.display(description=gettext_lazy("lease owner"))
    def engine_lease_owner(self, run: FunctionRun) -> str:
        return run.lease_owner or EMPTY

    @admin.display(description=gettext_lazy("lease expires at"))
    def engine_lease_expires_at(self, run: FunctionRun) -> str:
        return moment(run.lease_expires_at)

    @admin.display(description=gettext_lazy("attempt"))
    def engine_attempt(self, run: FunctionRun) -> int:
        return run.attempt

    @admin.display(description=gettext_lazy("cancel signal sent"), boolean=True)
    def engine_cancelled_signal_sent(self, run: FunctionRun) -> bool:
        return run.cancelled_signal_sent

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
        if looks_like_payload_search(term):
            try:
                terms = parse_payload_search(term)
            except PayloadSearchError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return queryset.none(), False
            return queryset.filter(payload_q(terms, field="event__data")), False
        match = Q(run_id=term.upper()) | Q(event_id=term.upper()) | Q(event__external_id=term)
        return queryset.filter(match), False

    # -- actions ------------------------------------------------------------------------------
    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return has_run_permission(request, "rerun_functionrun")

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
        live = path(
            "<path:object_id>/live/",
            self.admin_site.admin_view(self.live_view),
            name=f"{opts.app_label}_{opts.model_name}_live",
        )
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(lambda request: dashboard_view(self, request)),
            name=f"{opts.app_label}_dashboard",
        )
        # Before the defaults: their catch-all `<path:object_id>/` would swallow `…/cancel/`.
        return [dashboard, cancel, live, *super().get_urls()]

    def live_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The run page's live fragment, fetched by run_live.js while the run is active."""
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404(_("No run has the ID %(id)s.") % {"id": unquote(object_id)})
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        context = live_context(request, run, show_all=request.GET.get("steps") == "all")
        response = TemplateResponse(request, "django_inngest/admin/run_live.html", context)
        return response

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
        context = live_context(request, run, show_all=request.GET.get("steps") == "all")
        context.update(
            {
                "can_cancel": not run.is_ended and self.has_cancel_permission(request),
                "cancel_url": reverse(
                    f"{self.admin_site.name}:{self._url_name('cancel')}", args=(run.run_id,)
                ),
                "live_url": reverse(
                    f"{self.admin_site.name}:{self._url_name('live')}", args=(run.run_id,)
                ),
            }
        )
        return context
