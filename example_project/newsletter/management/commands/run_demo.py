"""``manage.py run_demo``: the seed scenario against a real ``qcluster`` worker.

1. Start ``manage.py qcluster`` as a subprocess and echo its console.
2. Request two imports: one over Inngest's HTTP event API, one with ``send_sync``.
3. Cancel the first with ``contacts/import.cancelled`` and the same ``importId``.
4. Show: the first run Cancelled, the second still running to completion, the
   ``inngest/function.cancelled`` payload, and the cleanup function's log line.
Exits non-zero if any of that does not happen.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from django.utils import timezone

from django_inngest import Event
from django_inngest.models import (
    CronSchedule,
    FunctionRegistration,
    FunctionRun,
    RunStatus,
    StepStatus,
)
from django_inngest.models import Event as StoredEvent
from newsletter.inngest_functions import inngest_client
from newsletter.models import Contact

IMPORT_FN = "newsletter-app-import-all-contacts"
CLEANUP_FN = "newsletter-app-cleanup-cancelled-import"
NIGHTLY_FN = "newsletter-app-cleanup-stale-imports"


class Worker:
    """A real ``qcluster`` process whose output we echo and search."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        manage = Path(sys.argv[0]).resolve()
        self.process = subprocess.Popen(
            [sys.executable, str(manage), "qcluster"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout as output:  # closed at EOF, when the cluster is gone
            for line in output:
                line = line.rstrip()
                self.lines.append(line)
                print(f"    [worker] {line}", flush=True)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        """SIGTERM to the cluster's main process only: its stop procedure drains the sentinel,
        pusher, monitor and workers in about a second. (A TERM to every process of the group at
        once kills the sentinel mid-handshake and the main process then waits for it forever.)
        Whatever is left after that gets SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._pump_thread.join(timeout=5)  # the worker's last lines, then EOF


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise CommandError(f"timed out after {timeout:.0f}s waiting for: {what}")


class Command(BaseCommand):
    help = "Run the cleanup-after-cancellation seed scenario against a real qcluster worker."

    def handle(self, *args: Any, **options: Any) -> None:
        worker = Worker()
        try:
            wait_for("the worker to start", lambda: worker.saw("ready for work"), timeout=60)
            self.scenario(worker)
        finally:
            started = time.monotonic()
            worker.stop()
            self.stdout.write(f"Worker stopped in {time.monotonic() - started:.1f}s.")

    def step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n== {text}"))

    def scenario(self, worker: Worker) -> None:
        cancelled_id, kept_id = str(uuid.uuid4()), str(uuid.uuid4())

        self.step(f"Request import {cancelled_id} over the HTTP event API (POST /e/<key>)")
        key = settings.DJANGO_INNGEST_EVENT_KEYS[0]
        response = Client().post(
            f"/e/{key}",
            data=json.dumps(
                {"name": "contacts/import.requested", "data": {"importId": cancelled_id}}
            ),
            content_type="application/json",
        )
        self.stdout.write(f"   {response.status_code} {response.content.decode()}")
        if response.status_code != 200:
            raise CommandError("the event API refused the event")

        self.step(f"Request import {kept_id} with inngest_client.send_sync(...)")
        ids = inngest_client.send_sync(
            Event(name="contacts/import.requested", data={"importId": kept_id, "batches": 4})
        )
        self.stdout.write(f"   event ids: {ids}")

        cancelled_run = wait_for(
            "the first import's run", lambda: self.run_for(IMPORT_FN, cancelled_id), timeout=10
        )
        kept_run = wait_for(
            "the second import's run", lambda: self.run_for(IMPORT_FN, kept_id), timeout=10
        )
        self.stdout.write(f"   runs: {cancelled_run.run_id} and {kept_run.run_id}")
        wait_for(
            "two batches of the first import",
            lambda: (
                cancelled_run.steps.filter(status=StepStatus.COMPLETED, kind="run").count() >= 2
            ),
        )

        self.step(
            f"Cancel import {cancelled_id}: send contacts/import.cancelled with that importId"
        )
        inngest_client.send_sync(
            Event(name="contacts/import.cancelled", data={"importId": cancelled_id})
        )
        cancelled_run = wait_for(
            "the first run to be Cancelled",
            lambda: FunctionRun.objects.filter(
                pk=cancelled_run.pk, status=RunStatus.CANCELLED
            ).first(),
            timeout=10,
        )
        done = cancelled_run.steps.filter(kind="run", status=StepStatus.COMPLETED).count()
        self.stdout.write(
            f"   {cancelled_run.run_id}: {cancelled_run.status} after {done} batches "
            f"(source: {cancelled_run.cancel_source})"
        )

        self.step("The system event inngest/function.cancelled, as stored and dispatched")
        cancelled_event = wait_for(
            "inngest/function.cancelled",
            lambda: StoredEvent.objects.filter(
                name="inngest/function.cancelled", external_id=cancelled_run.run_id
            ).first(),
        )
        print(
            json.dumps(
                {
                    "name": cancelled_event.name,
                    "data": cancelled_event.data,
                    "id": cancelled_event.external_id,
                    "ts": cancelled_event.ts,
                },
                indent=2,
            )
        )

        self.step("The cleanup function runs for that function ID and logs the import")
        cleanup = wait_for(
            "the cleanup run to complete",
            lambda: FunctionRun.objects.filter(
                function_id=CLEANUP_FN, event=cancelled_event, status=RunStatus.COMPLETED
            ).first(),
        )
        line = f"Import was cancelled: {cancelled_id}"
        wait_for(f"the worker log line {line!r}", lambda: worker.saw(line), timeout=10)
        self.stdout.write(
            f"   cleanup run {cleanup.run_id}: {cleanup.status}, output {cleanup.output}"
        )
        self.stdout.write(f"   worker logged: {line}")

        self.step(f"Import {kept_id} was not cancelled and runs to completion")
        kept_run = wait_for(
            "the second import to complete",
            lambda: FunctionRun.objects.filter(pk=kept_run.pk, status=RunStatus.COMPLETED).first(),
        )
        self.stdout.write(
            f"   {kept_run.run_id}: {kept_run.status}, output {kept_run.output}; "
            f"contacts kept: {Contact.objects.filter(import_id=kept_id).count()}, "
            f"contacts left from the cancelled import: "
            f"{Contact.objects.filter(import_id=cancelled_id).count()}"
        )
        if Contact.objects.filter(import_id=cancelled_id).exists():
            raise CommandError("the cleanup did not remove the cancelled import's contacts")
        self.flow_control()
        self.stdout.write(
            self.style.SUCCESS("\nDemo finished: the seed scenario works end to end.")
        )

    def flow_control(self) -> None:
        """Beyond the seed: the import's concurrency limit and the nightly cron schedule."""
        self.step("Flow control: the import's concurrency and the nightly schedule")
        config = FunctionRegistration.objects.get(function_id=IMPORT_FN).config
        self.stdout.write(f"   {IMPORT_FN} concurrency: {config['concurrency']}")
        schedule = CronSchedule.objects.get(function_id=NIGHTLY_FN)
        self.stdout.write(f"   {NIGHTLY_FN}: {schedule.cron!r}, next tick {schedule.next_tick_at}")
        # Pretend it is 03:00 in Paris: the workers' poller fires the tick, exactly once.
        tick = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
        CronSchedule.objects.filter(pk=schedule.pk).update(next_tick_at=tick)
        nightly = wait_for(
            "the nightly cleanup run",
            lambda: FunctionRun.objects.filter(
                function_id=NIGHTLY_FN, status=RunStatus.COMPLETED
            ).first(),
            timeout=30,
        )
        self.stdout.write(
            f"   tick {tick.isoformat()} fired run {nightly.run_id} "
            f"({nightly.event.name}): {nightly.output}"
        )

    @staticmethod
    def run_for(function_id: str, import_id: str) -> FunctionRun | None:
        return (
            FunctionRun.objects.filter(function_id=function_id, event__data__importId=import_id)
            .select_related("event")
            .first()
        )
