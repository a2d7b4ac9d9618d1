"""The event page's links to runs besides the ones it started: the run a system event is about,
the runs a ``cancel_on`` event cancelled and the waits an event resumed. Each is stored on the
run or step (``cancel_event_id``, ``matched_event_id``) and found through a partial index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy

from django_inngest.admin.base import EMPTY, html_list, status_badge
from django_inngest.models import Event, FunctionRun, StepRun

if TYPE_CHECKING:
    from django_inngest.admin.base import ReadOnlyAdmin

    _Base = ReadOnlyAdmin
else:
    _Base = object

#: Each list shows at most this many runs.
MAX_SHOWN = 100
#: System events (``inngest/function.finished``, ``.failed``, ``.cancelled``) are about a run.
SYSTEM_PREFIX = "inngest/function."

Links = list[tuple[str, list[SafeString]]]


class EventLinksMixin(_Base):
    """Adds a "Related runs" fieldset, shown only when there is something to link."""

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets: list[Any] = list(super().get_fieldsets(request, obj))
        if obj is not None and self._links(obj):
            fieldsets.insert(1, (gettext_lazy("Related runs"), {"fields": ("links_display",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_readonly_fields(request, obj), "links_display")

    def _links(self, event: Event) -> Links:
        """Computed once per page (the admin asks for the fieldsets several times)."""
        cached: Links | None = getattr(event, "_inngest_links", None)
        if cached is not None:
            return cached
        links: Links = []
        about = event.data.get("run_id") if event.name.startswith(SYSTEM_PREFIX) else None
        if isinstance(about, str):
            run = FunctionRun.objects.filter(pk=about).first()
            if run is not None:
                links.append((str(gettext_lazy("about run")), [self._run_item(run)]))
        cancelled = FunctionRun.objects.filter(cancel_event_id=event.pk).order_by("created_at")
        if items := [self._run_item(run) for run in cancelled[:MAX_SHOWN]]:
            links.append((str(gettext_lazy("runs it cancelled")), items))
        resumed = (
            StepRun.objects.filter(matched_event_id=event.pk)
            .select_related("run")
            .order_by("started_at")[:MAX_SHOWN]
        )
        if items := [
            format_html("{} <code>{}</code>", self._run_item(step.run), step.step_id)
            for step in resumed
        ]:
            links.append((str(gettext_lazy("waits it resumed")), items))
        event._inngest_links = links  # type: ignore[attr-defined]
        return links

    def _run_item(self, run: FunctionRun) -> SafeString:
        return format_html(
            '<a href="{}">{}</a> {} <small>{}</small>',
            self.url_for(run),
            run.run_id,
            status_badge(run.status, run.get_status_display()),
            run.function_id,
        )

    @admin.display(description=gettext_lazy("links"))
    def links_display(self, event: Event) -> SafeString | str:
        links = self._links(event)
        if not links:
            return EMPTY
        return format_html(
            '<dl class="inngest-event-links">{}</dl>',
            format_html_join(
                "",
                "<dt>{}</dt><dd>{}</dd>",
                ((label, html_list(list(items))) for label, items in links),
            ),
        )
