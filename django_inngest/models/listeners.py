"""Pending ``cancel_on`` rules and ``wait_for_event`` waits ("pauses" in Inngest), and the
indexed lookup an incoming event makes to find the ones it may match.

At schedule time the triggering event's values are substituted into the expression (Inngest's
``Interpolate``), leaving only ``async``. One ``async.<path> == <literal>`` predicate is hashed
into ``match_key``; an incoming event computes the keys of its own leaves and fetches candidate
listeners with one indexed query. Only candidates get a CEL evaluation.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from django_inngest import expressions, matching
from django_inngest.models.choices import ListenerKind
from django_inngest.models.runs import FunctionRun


def residual(expression: str | None, trigger_payload: dict[str, Any]) -> str:
    """The expression with the trigger's values substituted: "" means "always", "false" never."""
    if not expression:
        return ""
    interpolated = expressions.interpolate(expression, trigger_payload)
    return "" if interpolated == "true" else interpolated


class ListenerQuerySet(models.QuerySet["Listener"]):
    def candidates(
        self, names: Collection[str], keys: Collection[str], now: datetime
    ) -> ListenerQuerySet:
        """Unexpired listeners for these event names whose match key is one of ``keys`` or none,
        oldest first: the indexed lookup every send makes (``inngest_listener_match``)."""
        return self.filter(
            Q(match_key__in=keys) | Q(match_key__isnull=True),
            event_name__in=names,
            expires_at__gt=now,
        ).order_by("created_at", "id")


class Listener(models.Model):
    """A pending cancel rule or ``wait_for_event`` ("pause" in Inngest).

    ``expression`` has the triggering event's values substituted, so it refers to ``async``
    only. ``match_key`` hashes one ``async.<path> == <literal>`` predicate of it, so an incoming
    event finds its candidates with one indexed lookup instead of a CEL evaluation per listener.
    """

    kind = models.CharField(_("kind"), max_length=8, choices=ListenerKind.choices)
    run = models.ForeignKey(
        FunctionRun, on_delete=models.CASCADE, related_name="listeners", verbose_name=_("run")
    )
    step_id = models.CharField(_("step ID"), max_length=255, blank=True, default="")
    event_name = models.CharField(_("event name"), max_length=255)
    expression = models.TextField(_("expression"), blank=True, default="")
    # NULL, not "", marks a listener the index cannot serve; the candidate query says IS NULL.
    match_key = models.CharField(_("match key"), max_length=40, null=True, blank=True)  # noqa: DJ001
    trigger_event_id = models.CharField(_("triggering event"), max_length=26)
    expires_at = models.DateTimeField(_("expires at"))
    created_at = models.DateTimeField(_("created at"))

    objects = ListenerQuerySet.as_manager()

    class Meta:
        verbose_name = _("listener")
        verbose_name_plural = _("listeners")
        indexes = (
            models.Index(fields=("event_name", "match_key"), name="inngest_listener_match"),
            models.Index(fields=("expires_at",), name="inngest_listener_expiry"),
        )

    def __str__(self) -> str:
        return f"{self.kind} on {self.event_name} for {self.run_id}"

    @classmethod
    def build(
        cls,
        kind: ListenerKind,
        run: FunctionRun,
        event_name: str,
        expression: str,
        expires_at: datetime,
        now: datetime,
        step_id: str = "",
    ) -> Listener:
        """An unsaved listener for an already interpolated expression (see ``residual``)."""
        return cls(
            kind=kind,
            run=run,
            step_id=step_id,
            event_name=event_name,
            expression=expression,
            match_key=matching.key_for_expression(expression) if expression else None,
            trigger_event_id=run.event_id,
            expires_at=expires_at,
            created_at=now,
        )

    def accepts(self, keys: Collection[str], payload: dict[str, Any]) -> bool:
        """The event (its leaf keys and payload) satisfies this listener."""
        if self.match_key is not None and self.match_key not in keys:
            return False
        return not self.expression or bool(expressions.evaluate(self.expression, async_=payload))
