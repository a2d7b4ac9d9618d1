"""SDK apps: the apps that serve functions with the official SDK, their functions, and the
"Sync app" button (and action), which ask an app to sync again; a URL form syncs a new one."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_inngest.admin.base import ReadOnlyAdmin, html_list, moment
from django_inngest.models import SdkApp
from django_inngest.sdk_apps.sync import SyncOutcome, request_sync


@admin.register(SdkApp)
class SdkAppAdmin(ReadOnlyAdmin):
    list_display = ("app_id", "url", "sdk", "version", "functions_active", "synced")
    search_fields = ("app_id", "url")
    actions = ("sync_selected",)
    change_form_template = "django_inngest/admin/sdk_app_change_form.html"
    change_list_template = "django_inngest/admin/sdk_app_change_list.html"
    fields = (
        "app_id",
        "url",
        "sdk",
        "framework",
        "app_version",
        "version",
        "synced",
        "functions_display",
        "checksum",
    )
    readonly_fields = ("synced", "functions_display")

    def get_queryset(self, request: HttpRequest) -> QuerySet[SdkApp]:
        active = Count("functions", filter=Q(functions__is_active=True))
        return super().get_queryset(request).annotate(active_functions=active)

    def has_sync_permission(self, request: HttpRequest) -> bool:
        # A sync rewrites the app's functions: the model's own change permission.
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.display(description=gettext_lazy("active functions"), ordering="active_functions")
    def functions_active(self, app: SdkApp) -> int:
        return int(getattr(app, "active_functions", 0))

    @admin.display(description=gettext_lazy("synced at"), ordering="synced_at")
    def synced(self, app: SdkApp) -> str:
        return moment(app.synced_at)

    @admin.display(description=gettext_lazy("functions"))
    def functions_display(self, app: SdkApp) -> Any:
        return html_list(
            [
                self.link(f, f.function_id if f.is_active else _("%s (removed)") % f.function_id)
                for f in app.functions.order_by("-is_active", "function_id")
            ]
        )

    # -- syncing ------------------------------------------------------------------------------
    @admin.action(description=gettext_lazy("Sync selected apps"), permissions=["sync"])
    def sync_selected(self, request: HttpRequest, queryset: QuerySet[SdkApp]) -> None:
        for app in queryset:
            self.report(request, app.url, request_sync(app.url))

    def report(self, request: HttpRequest, url: str, outcome: SyncOutcome) -> None:
        if outcome.ok:
            self.message_user(request, f"{url}: {outcome.message}", messages.SUCCESS)
        else:
            self.message_user(
                request,
                _("%(url)s: sync failed: %(why)s") % {"url": url, "why": outcome.message},
                messages.ERROR,
            )

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        views = [
            path(
                "sync-url/", self.admin_site.admin_view(self.sync_url_view), name=f"{name}_sync_url"
            ),
            path(
                "<path:object_id>/sync/",
                self.admin_site.admin_view(self.sync_view),
                name=f"{name}_sync",
            ),
        ]
        return [*views, *super().get_urls()]  # before the catch-all `<path:object_id>/`

    def sync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The app page's "Sync app" button posts here."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_sync_permission(request):
            raise PermissionDenied
        app = SdkApp.objects.filter(pk=unquote(object_id)).first()
        if app is None:
            self.message_user(request, _("No such app."), messages.ERROR)
            return HttpResponseRedirect(self._url("changelist"))
        self.report(request, app.url, request_sync(app.url))
        return HttpResponseRedirect(self._url("change", app.pk))

    def sync_url_view(self, request: HttpRequest) -> HttpResponse:
        """The list's "Sync an app" form: a new app's serve URL."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_sync_permission(request):
            raise PermissionDenied
        url = (request.POST.get("url") or "").strip()
        if not url:
            self.message_user(request, _("Give the app's serve URL."), messages.ERROR)
        else:
            self.report(request, url, request_sync(url))
        return HttpResponseRedirect(self._url("changelist"))

    def _url(self, view: str, *args: Any) -> str:
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{view}", args=args
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: SdkApp | None = None,
    ) -> HttpResponse:
        if obj is not None and self.has_sync_permission(request):
            context["sync_url"] = self._url("sync", obj.pk)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        if self.has_sync_permission(request):
            extra["sync_url_action"] = self._url("sync_url")
        return super().changelist_view(request, extra)
