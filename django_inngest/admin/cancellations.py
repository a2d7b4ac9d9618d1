"""Bulk cancellations: the records, and the form that previews and then creates one."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_inngest import expressions
from django_inngest.admin.base import EMPTY, ReadOnlyAdmin, moment, status_badge
from django_inngest.admin.cancel_confirm import admin_actor
from django_inngest.engine.cancellation import (
    MAX_FUTURE_SKEW,
    MAX_REASON_LENGTH,
    BulkCancellationError,
    create_bulk_cancellation,
    matching_runs,
)
from django_inngest.exceptions import ExpressionError
from django_inngest.models import Cancellation, CancelSource, FunctionRegistration, FunctionRun

#: The preview lists this many of the matching runs; the count covers all of them.
PREVIEW_LIMIT = 50
_DATETIME_INPUT = {"type": "datetime-local", "step": "1"}


class FunctionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        suffix = "" if obj.is_active else _(" (inactive)")
        return f"{obj.function_id}{suffix}"


class BulkCancelForm(forms.Form):
    """The admin's counterpart of ``POST /v1/cancellations``."""

    function = FunctionChoiceField(
        queryset=FunctionRegistration.objects.order_by("function_id"),
        to_field_name="function_id",
        label=gettext_lazy("Function"),
    )
    started_after = forms.DateTimeField(
        label=gettext_lazy("Started after"),
        required=False,
        widget=forms.DateTimeInput(attrs=_DATETIME_INPUT, format="%Y-%m-%dT%H:%M:%S"),
        help_text=gettext_lazy("Optional. Runs created at or after this time."),
    )
    started_before = forms.DateTimeField(
        label=gettext_lazy("Started before"),
        widget=forms.DateTimeInput(attrs=_DATETIME_INPUT, format="%Y-%m-%dT%H:%M:%S"),
        help_text=gettext_lazy("Runs created at or before this time (at most now)."),
    )
    if_exp = forms.CharField(
        label="if",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60, "spellcheck": "false"}),
        help_text=gettext_lazy(
            "Optional CEL expression over the triggering event, e.g. "
            "event.data.importId == 'abc'. Only runs whose event satisfies it are cancelled."
        ),
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        required=False,
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60, "class": "inngest-reason"}),
        help_text=gettext_lazy(
            "Optional. Stored on every run it cancels with your user name, sent with the "
            "function_cancelled signal and in the inngest/function.cancelled event."
        ),
    )

    def clean_if_exp(self) -> str:
        expression: str = self.cleaned_data["if_exp"].strip()
        if expression:
            try:
                expressions.validate(expression, variables=("event",))
            except ExpressionError as exc:
                raise forms.ValidationError(exc.message, code="invalid_expression") from exc
        return expression

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        after, before = cleaned.get("started_after"), cleaned.get("started_before")
        # Checked here as well as by the service so that the preview, not only the final
        # confirmation, explains the problem next to the field.
        if before is not None and before > timezone.now() + MAX_FUTURE_SKEW:
            self.add_error("started_before", _("This must not be in the future."))
        if after is not None and before is not None and after >= before:
            self.add_error("started_after", _("This must be earlier than “started before”."))
        return cleaned

    def unsaved_cancellation(self) -> Cancellation:
        """The record as it would be created, for ``matching_runs`` to preview."""
        data = self.cleaned_data
        function: FunctionRegistration = data["function"]
        return Cancellation(
            app_id=function.app_id,
            function=function,
            started_after=data["started_after"],
            started_before=data["started_before"],
            if_exp=data["if_exp"],
            source=CancelSource.ADMIN,
        )

    def preview_key(self) -> str:
        """Fingerprint of the criteria: a confirmation only counts for what was previewed (the
        reason is not a criterion: it may be edited between the preview and the confirmation)."""
        data = self.cleaned_data
        parts = [
            data["function"].function_id,
            _iso(data["started_after"]),
            _iso(data["started_before"]),
            data["if_exp"],
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


@admin.register(Cancellation)
class CancellationAdmin(ReadOnlyAdmin):
    list_display = ("id", "function", "window", "if_display", "created", "source", "runs_cancelled")
    list_filter = ("source", "function")
    list_select_related = ("function",)
    search_fields = ("=id", "function__function_id", "name")
    date_hierarchy = "created_at"
    change_list_template = "django_inngest/admin/cancellation_change_list.html"
    fields = (
        "id",
        "name",
        "function",
        "app_id",
        "after",
        "before",
        "if_display",
        "source",
        "actor",
        "reason",
        "created",
        "runs_link",
    )
    readonly_fields = ("id", "after", "before", "if_display", "created", "runs_link")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Cancellation]:
        return super().get_queryset(request).annotate(runs_count=Count("runs"))

    @admin.display(description=gettext_lazy("window"))
    def window(self, cancellation: Cancellation) -> str:
        after = moment(cancellation.started_after) if cancellation.started_after else "…"
        return f"{after} → {moment(cancellation.started_before)}"

    @admin.display(description=gettext_lazy("started after"))
    def after(self, cancellation: Cancellation) -> str:
        return moment(cancellation.started_after)

    @admin.display(description=gettext_lazy("started before"))
    def before(self, cancellation: Cancellation) -> str:
        return moment(cancellation.started_before)

    @admin.display(description="if", ordering="if_exp")
    def if_display(self, cancellation: Cancellation) -> SafeString | str:
        return format_html("<code>{}</code>", cancellation.if_exp) if cancellation.if_exp else EMPTY

    @admin.display(description=gettext_lazy("created at"), ordering="created_at")
    def created(self, cancellation: Cancellation) -> str:
        return moment(cancellation.created_at)

    @admin.display(description=gettext_lazy("runs cancelled"), ordering="runs_count")
    def runs_cancelled(self, cancellation: Cancellation) -> SafeString | int:
        count: int = getattr(cancellation, "runs_count", 0)
        return (
            format_html('<a href="{}">{}</a>', self.runs_url(cancellation), count) if count else 0
        )

    @admin.display(description=gettext_lazy("cancelled runs"))
    def runs_link(self, cancellation: Cancellation) -> SafeString:
        count: int = getattr(cancellation, "runs_count", 0)
        label = ngettext("%(count)d run", "%(count)d runs", count) % {"count": count}
        return format_html('<a href="{}">{}</a>', self.runs_url(cancellation), label)

    def runs_url(self, cancellation: Cancellation) -> str:
        changelist = reverse(f"{self.admin_site.name}:django_inngest_functionrun_changelist")
        return f"{changelist}?{urlencode({'cancellation': cancellation.pk})}"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {})}
        if self.has_cancel_permission(request):
            extra_context["bulk_cancel_url"] = reverse(
                f"{self.admin_site.name}:django_inngest_cancellation_bulk_cancel"
            )
        return super().changelist_view(request, extra_context)

    # -- the bulk cancellation form -----------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        bulk = path(
            "bulk-cancel/",
            self.admin_site.admin_view(self.bulk_cancel_view),
            name="django_inngest_cancellation_bulk_cancel",
        )
        return [bulk, *super().get_urls()]

    def bulk_cancel_view(self, request: HttpRequest) -> HttpResponse:
        """Step 1 previews how many runs match; step 2 (the confirm button) cancels them."""
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        preview: dict[str, Any] | None = None
        if request.method == "POST":
            form = BulkCancelForm(request.POST)
            if form.is_valid():
                key = form.preview_key()
                if "confirm" in request.POST and request.POST.get("preview_key") == key:
                    response = self._create(request, form)
                    if response is not None:
                        return response
                else:
                    if "confirm" in request.POST:
                        self.message_user(
                            request,
                            _(
                                "The criteria changed after the preview; check the runs below "
                                "and confirm again."
                            ),
                            messages.WARNING,
                        )
                    matches = matching_runs(form.unsaved_cancellation())
                    preview = {
                        "count": len(matches),
                        "runs": self._preview_rows(matches),
                        "key": key,
                    }
        else:
            form = BulkCancelForm(
                initial={
                    "function": request.GET.get("function") or None,
                    # Rounded up: the widget drops fractions, and "now" should include this second.
                    "started_before": timezone.now().replace(microsecond=0) + timedelta(seconds=1),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Bulk cancel runs"),
            "opts": self.model._meta,
            "form": form,
            "preview": preview,
            "preview_limit": PREVIEW_LIMIT,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "django_inngest/admin/bulk_cancel.html", context)

    def _preview_rows(self, matches: list[FunctionRun]) -> list[dict[str, Any]]:
        return [
            {
                "url": self.url_for(run),
                "run_id": run.run_id,
                "created": moment(run.created_at),
                "status": status_badge(run.status, run.get_status_display()),
                "event": run.event.name,
                "event_id": run.event.internal_id,
            }
            for run in matches[:PREVIEW_LIMIT]
        ]

    def _create(self, request: HttpRequest, form: BulkCancelForm) -> HttpResponse | None:
        data = form.cleaned_data
        function: FunctionRegistration = data["function"]
        try:
            cancellation, cancelled = create_bulk_cancellation(
                app_id=function.app_id,
                function_id=function.function_id,
                started_after=data["started_after"],
                started_before=data["started_before"],
                if_exp=data["if_exp"] or None,
                name=_("by %(user)s") % {"user": request.user},
                source=CancelSource.ADMIN,
                reason=data["reason"],
                actor=admin_actor(request),
            )
        except BulkCancellationError as exc:
            form.add_error(None, str(exc))
            return None
        message = ngettext(
            "Bulk cancellation created: %(count)d run was cancelled.",
            "Bulk cancellation created: %(count)d runs were cancelled.",
            cancelled,
        ) % {"count": cancelled}
        self.message_user(request, message, messages.SUCCESS)
        if self.has_view_permission(request, cancellation):
            return HttpResponseRedirect(self.url_for(cancellation))
        return HttpResponseRedirect(self.runs_url(cancellation))
