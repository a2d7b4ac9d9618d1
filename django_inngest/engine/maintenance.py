"""Periodic housekeeping run by the workers' poller: outbox redelivery, expired listeners and
dedupe keys, and retention (a bounded slice of old runs and events per pass)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from django_inngest.engine import retention
from django_inngest.engine.lifecycle import send_cancelled_signal
from django_inngest.models import DedupeKey, FunctionRun, Listener, ListenerKind, RunStatus

logger = logging.getLogger(__name__)
#: A cancel signal not delivered this long after the cancel committed was lost to a crash.
OUTBOX_GRACE = timedelta(seconds=10)
#: Inngest deletes expired pauses after a 20-minute grace period.
LISTENER_GRACE = timedelta(minutes=20)


def redeliver_cancel_signals(limit: int = 100) -> int:
    cutoff = timezone.now() - OUTBOX_GRACE
    runs = list(
        FunctionRun.objects.select_related("event").filter(
            status=RunStatus.CANCELLED, cancelled_signal_sent=False, ended_at__lt=cutoff
        )[:limit]
    )
    for run in runs:
        logger.warning("Redelivering function_cancelled for run_id=%s", run.run_id)
        send_cancelled_signal(run)
    return len(runs)


def delete_expired_listeners() -> int:
    # Expired cancel rules simply lapse; expired waits are resolved by the run's own timeout.
    cutoff = timezone.now() - LISTENER_GRACE
    return Listener.objects.filter(expires_at__lt=cutoff, kind=ListenerKind.CANCEL).delete()[0]


def delete_expired_dedupe_keys() -> int:
    return DedupeKey.objects.filter(expires_at__lt=timezone.now()).delete()[0]


def periodic_maintenance() -> None:
    redeliver_cancel_signals()
    delete_expired_listeners()
    delete_expired_dedupe_keys()
    retention.prune_some(timezone.now())
