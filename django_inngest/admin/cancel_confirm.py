"""Cancelling from the admin: every cancel (the list action, the run page's button) first shows
what will be cancelled and takes an optional reason; the operator then confirms.

The reason and the operator (the Django user's name, the *actor*) go to the one cancel service
(``engine.cancellation``), which stores them on the run, sends them with the
``function_cancelled`` signal and adds them to ``inngest/function.cancelled``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_inngest.admin.base import moment, run_status
from django_inngest.engine.cancellation import (
    MAX_REASON_LENGTH,
    RunAlreadyEndedError,
    cancel_run,
    cancel_runs,
)
from django_inngest.models import CancelSource, FunctionRun, RunStatus

if TYPE_CHECKING:
    from django_inngest.admin.base import ReadOnlyAdmin

    _Base = ReadOnlyAdmin
else:
    _Base = object

#: The confirmation page lists this many runs; the counts cover all of them.
SHOWN = 100

#: (outcome key, message level, singular, plural) of a cancel's report.
_REPORTS = (
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


class CancelReasonForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        required=False,
        max_length=MAX_REASON_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70, "class": "inngest-reason"}),
        help_text=gettext_lazy(
            "Optional. Stored on the run with your user name, sent with the function_cancelled "
            "signal and in the inngest/function.cancelled event."
        ),
    )


def admin_actor(request: HttpRequest) -> str:
    """Who is cancelling: the logged-in user's name."""
    return str(request.user.get_username())


class CancelConfirmationMixin(_Base):
    """The run admin's cancel action and its Cancel button, both behind a confirmation page."""

    @admin.action(description=gettext_lazy("Cancel selected runs"), permissions=["cancel"])
    def cancel_selected(
        self, request: HttpRequest, queryset: QuerySet[FunctionRun]
    ) -> HttpResponse | None:
        # Step 1 (from the action menu) shows the page; step 2 (its form) posts back here with
        # `post=yes`, the same selection and the reason, as Django's delete action does.
        form = CancelReasonForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_valid():
            run_ids = list(queryset.values_list("run_id", flat=True))
            outcome = cancel_runs(
                run_ids,
                source=CancelSource.ADMIN,
                reason=form.cleaned_data["reason"],
                actor=admin_actor(request),
            )
            self.report_cancel_outcome(request, outcome)
            return None  # back to the list, which shows the messages
        runs = list(queryset.select_related("function", "event").order_by("created_at"))
        return self.cancel_confirmation(
            request,
            runs,
            form,
            action="cancel_selected",
            back_url=request.get_full_path(),
        )

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The run page's Cancel button: GET shows the confirmation, POST cancels
        (``admin_view`` adds the login and CSRF checks)."""
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        run_id = unquote(object_id)
        run = FunctionRun.objects.select_related("function", "event").filter(pk=run_id).first()
        if run is None:
            self.message_user(
                request, _("No run has the ID %(id)s.") % {"id": run_id}, messages.ERROR
            )
            return HttpResponseRedirect(self._admin_url("changelist"))
        change_url = self._admin_url("change", run_id)
        form = CancelReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            self._cancel_one(request, run_id, form.cleaned_data["reason"])
            return HttpResponseRedirect(change_url)
        if request.method != "POST" and run.is_ended:
            self._report_ended(request, run)
            return HttpResponseRedirect(change_url)
        return self.cancel_confirmation(request, [run], form, back_url=change_url)

    def _cancel_one(self, request: HttpRequest, run_id: str, reason: str) -> None:
        try:
            result = cancel_run(
                run_id, source=CancelSource.ADMIN, reason=reason, actor=admin_actor(request)
            )
        except RunAlreadyEndedError as exc:
            self._report_ended(request, exc.run)
            return
        if result.cancelled:
            self.message_user(request, _("The run was cancelled."), messages.SUCCESS)
        else:
            self.message_user(request, _("The run was already cancelled."), messages.INFO)

    def _report_ended(self, request: HttpRequest, run: FunctionRun) -> None:
        if run.status == RunStatus.CANCELLED:
            self.message_user(request, _("The run was already cancelled."), messages.INFO)
            return
        self.message_user(
            request,
            _("This run had already ended (%(status)s), so it was not cancelled.")
            % {"status": run.get_status_display()},
            messages.WARNING,
        )

    def report_cancel_outcome(self, request: HttpRequest, outcome: dict[str, list[str]]) -> None:
        for key, level, singular, plural in _REPORTS:
            count = len(outcome.get(key, ()))
            if count:
                self.message_user(
                    request, ngettext(singular, plural, count) % {"count": count}, level
                )

    def cancel_confirmation(
        self,
        request: HttpRequest,
        runs: list[FunctionRun],
        form: CancelReasonForm,
        *,
        back_url: str,
        action: str = "",
    ) -> TemplateResponse:
        """The page that says what will be cancelled, and asks why."""
        active = [run for run in runs if not run.is_ended]
        ended = [run for run in runs if run.is_ended]
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": ngettext("Cancel %(count)d run?", "Cancel %(count)d runs?", len(active))
            % {"count": len(active)},
            "opts": opts,
            "form": form,
            "active": [self._row(run) for run in active[:SHOWN]],
            "active_count": len(active),
            "ended": [self._row(run) for run in ended[:SHOWN]],
            "ended_count": len(ended),
            "shown": SHOWN,
            # The action re-posts the whole selection, as Django's delete confirmation does.
            "action": action,
            "selected": [run.run_id for run in runs] if action else [],
            "back_url": back_url,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "django_inngest/admin/cancel_confirmation.html", context)

    def _row(self, run: FunctionRun) -> dict[str, Any]:
        return {
            "url": self._admin_url("change", run.run_id),
            "run_id": run.run_id,
            "function_id": run.function_id,
            "status": run_status(run),
            "created": moment(run.created_at),
            "event": run.event.name,
            "event_id": run.event_id,
        }

    def _admin_url(self, view: str, *args: str) -> str:
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{view}", args=args
        )
