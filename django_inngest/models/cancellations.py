"""Bulk cancellations (``POST /v1/cancellations``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from django_inngest import expressions
from django_inngest.ids import new_ulid
from django_inngest.models.choices import CancelSource
from django_inngest.models.functions import FunctionRegistration


class CancellationQuerySet(models.QuerySet["Cancellation"]):
    def covering(self, function_id: str, created_at: datetime) -> CancellationQuerySet:
        """Bulk cancellations of the function whose window holds a run created then (Inngest
        compares the run's creation time, not its start)."""
        return self.filter(function_id=function_id, started_before__gte=created_at).filter(
            Q(started_after__isnull=True) | Q(started_after__lte=created_at)
        )


class Cancellation(models.Model):
    """A bulk cancellation (``POST /v1/cancellations``): a window and an optional ``if`` on ``event``."""

    id = models.CharField(
        _("ID"), primary_key=True, max_length=26, default=new_ulid, editable=False
    )
    name = models.CharField(_("name"), max_length=255, blank=True, default="")
    app_id = models.CharField(_("app ID"), max_length=255)
    function = models.ForeignKey(
        FunctionRegistration,
        to_field="function_id",
        db_column="function_id",
        on_delete=models.CASCADE,
        related_name="cancellations",
        verbose_name=_("function"),
    )
    started_after = models.DateTimeField(_("started after"), null=True, blank=True)
    started_before = models.DateTimeField(_("started before"))
    if_exp = models.TextField(_("if"), blank=True, default="")
    source = models.CharField(
        _("created by"), max_length=16, choices=CancelSource.choices, default=CancelSource.API
    )
    created_at = models.DateTimeField(_("created at"))
    reason = models.TextField(
        _("reason"), blank=True, default="", help_text=_("Recorded on every run it cancels.")
    )
    actor = models.CharField(
        _("created by whom"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("The Django user, or “signing key”, or the command line's OS user."),
    )

    objects = CancellationQuerySet.as_manager()

    class Meta:
        verbose_name = _("bulk cancellation")
        verbose_name_plural = _("bulk cancellations")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.function_id} before {self.started_before:%Y-%m-%d %H:%M:%S}"

    def matches(self, trigger_payload: dict[str, Any]) -> bool:
        """Its ``if`` (CEL over ``event``, the run's trigger) holds; no ``if`` matches all."""
        return not self.if_exp or bool(expressions.evaluate(self.if_exp, event=trigger_payload))
