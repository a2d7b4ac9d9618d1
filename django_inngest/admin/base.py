"""Shared pieces of the admin: the read-only base class, permissions and small renderers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db import models
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from django_inngest.console.timefmt import iso
from django_inngest.models import FunctionRun, RunStatus, WaitKind

#: Every run status has a badge colour (tests check none is missing).
STATUS_CSS = {
    RunStatus.QUEUED: "queued",
    RunStatus.RUNNING: "running",
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}
EMPTY = "—"


def has_run_permission(request: HttpRequest, codename: str) -> bool:
    """The custom FunctionRun permissions (``cancel_functionrun``, ``rerun_functionrun``)."""
    return request.user.has_perm(f"{FunctionRun._meta.app_label}.{codename}")


class ReadOnlyAdmin(admin.ModelAdmin):
    """The engine writes these rows; the admin shows them and never offers add, edit or delete."""

    class Media:
        css = {"all": ("django_inngest/admin.css",)}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return has_run_permission(request, "cancel_functionrun")

    def url_for(self, obj: models.Model, view: str = "change") -> str:
        """The admin URL of ``obj`` (``change``) or of its model's ``changelist``."""
        opts = obj._meta
        name = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{view}"
        if view == "changelist":
            return reverse(name)
        return reverse(name, args=(quote(obj.pk),))

    def link(self, obj: models.Model | None, text: Any = None) -> str:
        if obj is None:
            return EMPTY
        return format_html('<a href="{}">{}</a>', self.url_for(obj), obj if text is None else text)


def moment(value: datetime | None) -> str:
    """A precise, sortable timestamp: ISO 8601 with the zone (see ``django_inngest.console.timefmt``)."""
    if value is None:
        return EMPTY
    return iso(value)


def time_tag(value: datetime | None) -> SafeString | str:
    """``moment`` in a ``<time>`` element, so scripts and tests can read the instant back."""
    if value is None:
        return EMPTY
    text = iso(value)
    return format_html('<time datetime="{}">{}</time>', text, text)


def status_badge(status: str, label: Any = None) -> SafeString:
    css = STATUS_CSS.get(status, status.lower())  # type: ignore[call-overload]
    return format_html(
        '<span class="inngest-badge inngest-badge--{}">{}</span>', css, label or status
    )


def run_status(run: FunctionRun) -> SafeString:
    """The status badge, plus what a Running run is blocked on (Inngest shows all as Running)."""
    badge = status_badge(run.status, run.get_status_display())
    waiting = waiting_text(run)
    if not waiting:
        return badge
    return format_html('{} <span class="inngest-waiting">{}</span>', badge, waiting)


def waiting_text(run: FunctionRun) -> str:
    flow_reason = run.waiting_reason()  # flow control: concurrency, throttle, debounce, ...
    if flow_reason:
        return flow_reason
    if run.status != RunStatus.RUNNING or not run.wait_kind:
        return ""
    until = iso(run.ready_at) if run.ready_at else ""
    if run.wait_kind == WaitKind.SLEEP:
        return _("sleeping until %(time)s") % {"time": until} if until else _("sleeping")
    if run.wait_kind == WaitKind.EVENT:
        return _("waiting for event")
    if run.wait_kind == WaitKind.INVOKE:
        return _("waiting for invoked run")
    if run.wait_kind == WaitKind.RETRY:
        return (
            _("waiting to retry at %(time)s") % {"time": until} if until else _("waiting to retry")
        )
    return str(run.get_wait_kind_display())


def pretty_json(value: Any) -> SafeString | str:
    if value is None:
        return EMPTY
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return format_html('<pre class="inngest-json">{}</pre>', text)


def error_block(error: Any) -> SafeString | str:
    """Inngest's error shape: the message up front, the stack below, the rest as JSON."""
    if not error:
        return EMPTY
    if not isinstance(error, dict):
        return pretty_json(error)
    headline = error_headline(error)
    stack = error.get("stack") or ""
    rest = {k: v for k, v in error.items() if k not in ("error", "message", "name", "stack")}
    return format_html(
        '<div class="inngest-error"><strong>{}</strong>{}{}</div>',
        headline,
        format_html('<pre class="inngest-stack">{}</pre>', stack) if stack else "",
        pretty_json(rest) if rest else "",
    )


def html_list(items: list[SafeString | str]) -> SafeString | str:
    if not items:
        return EMPTY
    return format_html(
        '<ul class="inngest-list">{}</ul>',
        format_html_join("", "<li>{}</li>", ((i,) for i in items)),
    )


def error_headline(error: Any) -> str:
    """``Name: message`` of an Inngest-shaped error (its ``error`` field already reads so)."""
    if not error:
        return ""
    if not isinstance(error, dict):
        return str(error)
    name, message = str(error.get("name") or ""), str(error.get("message") or "")
    if name and message:
        return message if message.startswith(f"{name}:") else f"{name}: {message}"
    return str(error.get("error") or message or name)


def error_cell(error: Any) -> SafeString | str:
    """A list cell: the headline, cut by CSS to a line or two, whole in the tooltip."""
    headline = error_headline(error)
    if not headline:
        return EMPTY
    return format_html('<span class="inngest-error-cell" title="{}">{}</span>', headline, headline)
