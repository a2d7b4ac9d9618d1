"""Helpers shared by the test modules."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from django_inngest import Event, Inngest, engine
from django_inngest.models import FunctionRun


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
