"""Stored events, and the sender IDs that dedupe them."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_inngest.ids import new_ulid


class Event(models.Model):
    """A stored event: from Python, the HTTP event API, a step, or the engine (system events)."""

    internal_id = models.CharField(
        _("internal ID"), primary_key=True, max_length=26, default=new_ulid, editable=False
    )
    external_id = models.CharField(
        _("sender ID"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("The sender's optional `id`, used for 24 h dedupe."),
    )
    name = models.CharField(_("name"), max_length=255)
    data = models.JSONField(_("data"), default=dict)
    user = models.JSONField(_("user"), default=dict)
    ts = models.BigIntegerField(_("timestamp (ms)"))
    v = models.CharField(_("version"), max_length=64, blank=True, default="")
    received_at = models.DateTimeField(_("received at"))
    is_duplicate = models.BooleanField(
        _("duplicate"),
        default=False,
        help_text=_("A repeated sender ID within the dedupe window: stored, but started nothing."),
    )

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ("-received_at",)
        indexes = (
            models.Index(fields=("name", "-received_at"), name="inngest_event_name_recv"),
            models.Index(fields=("-received_at",), name="inngest_event_recv"),
            # A run's inngest/function.cancelled and inngest/function.failed events carry the
            # run ID as their sender ID: the run page finds them, and the runs they started.
            # One partial index per name, so that SQLite's planner can use it as well.
            models.Index(
                fields=("external_id",),
                name="inngest_event_cancelled_of",
                condition=models.Q(name="inngest/function.cancelled"),
            ),
            models.Index(
                fields=("external_id",),
                name="inngest_event_failed_of",
                condition=models.Q(name="inngest/function.failed"),
            ),
        )

    def __str__(self) -> str:
        return f"{self.name} ({self.internal_id})"

    def as_payload(self) -> dict[str, Any]:
        """The event as Inngest shows it inside system events and to handlers."""
        payload: dict[str, Any] = {
            "data": self.data,
            "id": self.external_id or self.internal_id,
            "name": self.name,
            "ts": self.ts,
            "user": self.user,
        }
        if self.v:
            payload["v"] = self.v
        return payload


class DedupeKey(models.Model):
    """A sender event ``id`` seen within the dedupe window.

    Claimed in the same transaction that stores the event: the primary key makes two concurrent
    senders of one ``id`` serialise, so exactly one of them starts functions.
    """

    key = models.CharField(_("sender ID"), primary_key=True, max_length=255)
    event_id = models.CharField(_("first event"), max_length=26)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)

    class Meta:
        verbose_name = _("dedupe key")
        verbose_name_plural = _("dedupe keys")

    def __str__(self) -> str:
        return self.key
