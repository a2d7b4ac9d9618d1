"""Helpers shared by the test modules."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_inngest import Event, Inngest, engine
from django_inngest.models import FunctionRun, StepRun


def start_in_a_worker_thread(
    client: Inngest, event_name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[FunctionRun, threading.Thread]:
    """Create a run without dispatching it, then advance it in a thread, as a worker would."""
    monkeypatch.setattr("django_inngest.executor.dispatch", lambda run_ids: None)
    (event_id,) = client.send_sync(Event(name=event_name))
    run = FunctionRun.objects.get(event_id=event_id)

    def work() -> None:
        try:
            engine.advance(run.run_id)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    return run, worker


def only_run(function_id: str) -> FunctionRun:
    """The one run of a function (fails if there are none or several)."""
    (run,) = FunctionRun.objects.filter(function__function_id=function_id)
    return run


def make_due(run: FunctionRun) -> None:
    """Pretend a sleep, timeout or retry delay has passed."""
    past = timezone.now() - timedelta(milliseconds=1)
    FunctionRun.objects.filter(pk=run.pk).update(ready_at=past)
    StepRun.objects.filter(run=run, wake_at__isnull=False).update(wake_at=past)
