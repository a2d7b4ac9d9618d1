"""List filters: runs created within a time range (presets, or any from/to the user types)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy

from django_inngest.console.timefmt import iso

PRESETS = (
    ("1h", gettext_lazy("Last hour"), timedelta(hours=1)),
    ("24h", gettext_lazy("Last 24 hours"), timedelta(days=1)),
    ("7d", gettext_lazy("Last 7 days"), timedelta(days=7)),
    ("30d", gettext_lazy("Last 30 days"), timedelta(days=30)),
)


def parse_moment(value: str, name: str) -> datetime:
    """An ISO 8601 time as typed (``2026-11-26T14:00``, with or without a zone; the site's
    zone when none), or an error naming the parameter."""
    parsed = parse_datetime(value.strip().replace(" ", "T"))
    if parsed is None:
        raise IncorrectLookupParameters(f"{name}: not an ISO 8601 time: {value!r}")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


class CreatedRangeFilter(admin.ListFilter):
    """``created_after`` / ``created_before`` (either may be left out), plus one-click presets.

    The presets are links that set ``created_after`` to an instant, so a shared URL keeps
    showing the same window rather than sliding with the clock.
    """

    title = gettext_lazy("created")
    template = "django_inngest/admin/created_range_filter.html"
    after_param = "created_after"
    before_param = "created_before"
    field = "created_at"

    def __init__(
        self,
        request: HttpRequest,
        params: dict[str, Any],
        model: type[Model],
        model_admin: admin.ModelAdmin,
    ) -> None:
        super().__init__(request, params, model, model_admin)
        self.values: dict[str, str] = {}
        # The other parameters (filters, search), kept by the from/to form's hidden inputs.
        self.other_params = [
            (key, value)
            for key, values in request.GET.lists()
            for value in values
            if key not in (self.after_param, self.before_param, "p")
        ]
        for name in (self.after_param, self.before_param):
            if name in params:
                value = params.pop(name)
                self.values[name] = value[-1] if isinstance(value, list) else value

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str | None]:
        return [self.after_param, self.before_param]

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        after = self.values.get(self.after_param)
        before = self.values.get(self.before_param)
        return (
            parse_moment(after, self.after_param) if after else None,
            parse_moment(before, self.before_param) if before else None,
        )

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        after, before = self.bounds()
        if after is not None:
            queryset = queryset.filter(**{f"{self.field}__gte": after})
        if before is not None:
            queryset = queryset.filter(**{f"{self.field}__lt": before})
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:
        yield {
            "selected": not self.values,
            "query_string": changelist.get_query_string(
                remove=[self.after_param, self.before_param]
            ),
            "display": gettext_lazy("Any time"),
        }
        now = timezone.now().replace(microsecond=0)
        current = self.values.get(self.after_param)
        for key, label, span in PRESETS:
            start = iso(now - span)
            yield {
                "selected": False,
                "query_string": changelist.get_query_string(
                    {self.after_param: start}, remove=[self.before_param]
                ),
                "display": label,
                "preset": key,
            }
        yield {
            "form": True,
            "after": current or "",
            "before": self.values.get(self.before_param, ""),
            "hidden": self.other_params,
        }
