"""Helpers shared by the test modules."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_inngest import Event, Inngest
from django_inngest.conf import settings as inngest_settings
from django_inngest.engine import worker
from django_inngest.models import Claim, FunctionRun, StepRun


def start_in_a_worker_thread(
    client: Inngest, event_name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[FunctionRun, threading.Thread]:
    """Create a run without dispatching it, then advance it in a thread, as a worker would."""
    monkeypatch.setattr("django_inngest.executor.dispatch", lambda run_ids: None)
    (event_id,) = client.send_sync(Event(name=event_name))
    run = FunctionRun.objects.get(event_id=event_id)

    def work() -> None:
        try:
            worker.advance(run.run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return run, thread


def only_run(function_id: str) -> FunctionRun:
    """The one run of a function (fails if there are none or several)."""
    (run,) = FunctionRun.objects.filter(function__function_id=function_id)
    return run


def make_due(run: FunctionRun) -> None:
    """Pretend a sleep, timeout or retry delay has passed."""
    past = timezone.now() - timedelta(milliseconds=1)
    FunctionRun.objects.filter(pk=run.pk).update(ready_at=past)
    StepRun.objects.filter(run=run, wake_at__isnull=False).update(wake_at=past)


def claim_again(run_id: str, owner: str) -> Claim | None:
    """Claim a run that was claimed before, as a worker resuming or recovering it does."""
    lease = timedelta(seconds=inngest_settings.LEASE_SECONDS)
    return FunctionRun.objects.claim_again(run_id, owner, timezone.now(), lease)


def claim_new(run_ids: list[str], owner: str) -> dict[str, Claim]:
    """Claim never-claimed runs together, as a worker task does for its batch."""
    lease = timedelta(seconds=inngest_settings.LEASE_SECONDS)
    return worker._claim_new(run_ids, owner, lease)
