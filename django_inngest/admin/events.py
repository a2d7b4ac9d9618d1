"""Events (linked to the runs they started) and the pending listeners."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from django_inngest.admin.base import EMPTY, ReadOnlyAdmin, moment, pretty_json, status_badge
from django_inngest.admin.event_links import EventLinksMixin
from django_inngest.console.payload_search import (
    PayloadSearchError,
    looks_like_payload_search,
    parse_payload_search,
    payload_q,
)
from django_inngest.models import Event, FunctionRun, Listener, SkippedRun

#: The event page lists at most this many runs (fan-out can be large); the rest are linked.
MAX_RUNS_SHOWN = 100


@admin.register(Event)
class EventAdmin(EventLinksMixin, ReadOnlyAdmin):
    list_display = (
        "name",
        "internal_id",
        "external_id",
        "received",
        "runs_started",
        "is_duplicate",
    )
    list_filter = ("is_duplicate", "name")
    search_fields = ("name", "=internal_id", "=external_id")
    search_help_text = gettext_lazy(
        "A name (or part of one), an exact internal or sender ID, or a value in the payload: "
        "importId=abc (also data.user.id:42; several terms must all match)."
    )
    date_hierarchy = "received_at"
    ordering = ("-received_at",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "internal_id",
                    "external_id",
                    "received",
                    "ts",
                    "v",
                    "is_duplicate",
                )
            },
        ),
        (gettext_lazy("Payload"), {"fields": ("data_display", "user_display")}),
        (
            gettext_lazy("Runs started by this event"),
            {"fields": ("runs_display", "skipped_display")},
        ),
    )
    readonly_fields = (
        "internal_id",
        "received",
        "data_display",
        "user_display",
        "runs_display",
        "skipped_display",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        # A correlated count per listed row (the FK index answers it), not a GROUP BY over the
        # whole events table, which would be computed before the page is sliced.
        started = (
            FunctionRun.objects.filter(event=OuterRef("pk"))
            .order_by()
            .values("event")
            .annotate(n=Count("pk"))
            .values("n")
        )
        skipped = (
            SkippedRun.objects.filter(event=OuterRef("pk"))
            .order_by()
            .values("event")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(run_count=Subquery(started), skip_count=Subquery(skipped))
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Event], search_term: str
    ) -> tuple[QuerySet[Event], bool]:
        term = search_term.strip()
        if looks_like_payload_search(term):
            try:
                terms = parse_payload_search(term)
            except PayloadSearchError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return queryset.none(), False
            return queryset.filter(payload_q(terms, field="data")), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=gettext_lazy("received at"), ordering="received_at")
    def received(self, event: Event) -> str:
        return moment(event.received_at)

    @admin.display(description=gettext_lazy("runs started"))
    def runs_started(self, event: Event) -> SafeString | int | str:
        count = getattr(event, "run_count", None) or 0
        if not count:
            skipped = getattr(event, "skip_count", None) or 0
            return gettext_lazy("0, %(n)s skipped") % {"n": skipped} if skipped else 0
        changelist = reverse("admin:django_inngest_functionrun_changelist")
        return format_html('<a href="{}?q={}">{}</a>', changelist, event.internal_id, count)

    @admin.display(description=gettext_lazy("skipped"))
    def skipped_display(self, event: Event) -> SafeString | str:
        """Functions this event triggered that started no run: rate limit, idempotency,
        singleton."""
        skips = list(event.skipped_runs.order_by("created_at"))
        if not skips:
            return EMPTY
        return format_html(
            '<ul class="inngest-list">{}</ul>',
            format_html_join(
                "",
                "<li><code>{}</code>: {}</li>",
                ((skip.function_id, skip.get_reason_display()) for skip in skips),
            ),
        )

    @admin.display(description=gettext_lazy("data"))
    def data_display(self, event: Event) -> SafeString | str:
        return pretty_json(event.data)

    @admin.display(description=gettext_lazy("user"))
    def user_display(self, event: Event) -> SafeString | str:
        return pretty_json(event.user)

    @admin.display(description=gettext_lazy("runs"))
    def runs_display(self, event: Event) -> SafeString | str:
        runs = list(event.runs.order_by("created_at")[: MAX_RUNS_SHOWN + 1])
        if not runs:
            return EMPTY
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    self.url_for(run),
                    run.run_id,
                    run.function_id,
                    status_badge(run.status, run.get_status_display()),
                    moment(run.created_at),
                )
                for run in runs[:MAX_RUNS_SHOWN]
            ),
        )
        more = ""
        if len(runs) > MAX_RUNS_SHOWN:
            changelist = self.url_for(runs[0], "changelist")
            more = format_html(
                '<p><a href="{}?q={}">{}</a></p>',
                changelist,
                event.internal_id,
                gettext_lazy("All runs of this event…"),
            )
        return format_html(
            '<table class="inngest-table inngest-event-runs"><thead><tr><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>{}",
            gettext_lazy("run ID"),
            gettext_lazy("function"),
            gettext_lazy("status"),
            gettext_lazy("created at"),
            rows,
            more,
        )


@admin.register(Listener)
class ListenerAdmin(ReadOnlyAdmin):
    list_display = ("kind", "event_name", "run_link", "step_id", "expires", "created")
    list_filter = ("kind", "event_name")
    list_select_related = ("run",)
    search_fields = ("=run__run_id", "event_name")
    fields = (
        "kind",
        "run_link",
        "step_id",
        "event_name",
        "expression",
        "match_key",
        "trigger_event_id",
        "created",
        "expires",
    )
    readonly_fields = ("run_link", "created", "expires")

    @admin.display(description=gettext_lazy("run"), ordering="run")
    def run_link(self, listener: Listener) -> str:
        return self.link(listener.run, listener.run_id)

    @admin.display(description=gettext_lazy("expires at"), ordering="expires_at")
    def expires(self, listener: Listener) -> str:
        return moment(listener.expires_at)

    @admin.display(description=gettext_lazy("created at"), ordering="created_at")
    def created(self, listener: Listener) -> str:
        return moment(listener.created_at)
