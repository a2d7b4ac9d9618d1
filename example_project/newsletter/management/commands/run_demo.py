"""``manage.py run_demo``: the seed scenario against a real worker (``inngest_worker``), twice.

First with functions written with django-inngest's own API (``newsletter``), then with the
same functions written with the official inngest SDK (``newsletter_sdk``), served by this
project over real HTTP, synced in and run by the same worker. Each time:

1. Request two imports (the first over Inngest's HTTP event API).
2. Cancel the first with ``<...>/import.cancelled`` and the same ``importId``.
3. Show: the first run Cancelled, the second still running to completion, the
   ``inngest/function.cancelled`` payload, and the cleanup function's log line.
Exits non-zero if any of that does not happen.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
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
from django_inngest.sdk_apps.sync import request_sync
from newsletter.inngest_functions import inngest_client
from newsletter.management.commands._demo_support import LogCatcher, WebServer, Worker, wait_for
from newsletter.models import Contact

IMPORT_FN = "newsletter-app-import-all-contacts"
NIGHTLY_FN = "newsletter-app-cleanup-stale-imports"


@dataclass(frozen=True)
class Variant:
    title: str
    import_fn: str
    cleanup_fn: str
    events: str  # event names' prefix: "<events>/import.requested"
    post_event: Callable[[dict[str, Any]], str]  # over HTTP; returns the answer's text
    saw_log: Callable[[str], bool]


class Command(BaseCommand):
    help = "Run the cleanup-after-cancellation seed scenario, in-process and with the SDK."

    def handle(self, *args: Any, **options: Any) -> None:
        worker = Worker()
        server: WebServer | None = None
        try:
            wait_for("the worker to start", lambda: worker.saw("ready for work"), timeout=60)
            self.heading("Part 1: functions written with django-inngest's API")
            self.scenario(self.in_process(worker))
            self.flow_control()
            self.heading("Part 2: the same functions written with the official inngest SDK")
            server = WebServer()
            self.scenario(self.with_sdk(server))
        finally:
            started = time.monotonic()
            worker.stop()
            self.stdout.write(f"Worker stopped in {time.monotonic() - started:.1f}s.")
            if server is not None:
                server.stop()
        self.stdout.write(
            self.style.SUCCESS("\nDemo finished: the seed scenario works end to end, twice.")
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

    def heading(self, text: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"\n##### {text}"))

    def step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n== {text}"))

    def in_process(self, worker: Worker) -> Variant:
        def post(event: dict[str, Any]) -> str:
            key = settings.DJANGO_INNGEST_EVENT_KEYS[0]
            response = Client().post(f"/e/{key}", json.dumps(event), "application/json")
            if response.status_code != 200:
                raise CommandError("the event API refused the event")
            return f"{response.status_code} {response.content.decode()}"

        return Variant(
            title="django-inngest",
            import_fn="newsletter-app-import-all-contacts",
            cleanup_fn="newsletter-app-cleanup-cancelled-import",
            events="contacts",
            post_event=post,
            saw_log=worker.saw,
        )

    def with_sdk(self, server: WebServer) -> Variant:
        serve_url = f"{server.url}/api/inngest"
        self.step(f"Serve the SDK app at {serve_url} and sync it (manage.py inngest_sync_app)")
        outcome = request_sync(serve_url)
        if not outcome.ok:
            raise CommandError(f"the sync failed: {outcome.message}")
        how = "in-band: the app answered with its functions" if outcome.in_band else "out-of-band"
        self.stdout.write(f"   {outcome.message} ({how})")
        sdk_log = LogCatcher("inngest")

        def post(event: dict[str, Any]) -> str:
            key = settings.DJANGO_INNGEST_EVENT_KEYS[0]
            request = urllib.request.Request(
                f"{server.url}/e/{key}",
                data=json.dumps(event).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return f"{response.status} {response.read().decode()}"

        return Variant(
            title="inngest SDK",
            import_fn="newsletter-sdk-app-import-all-contacts",
            cleanup_fn="newsletter-sdk-app-cleanup-cancelled-import",
            events="contacts.sdk",
            post_event=post,
            saw_log=sdk_log.saw,
        )

    def scenario(self, variant: Variant) -> None:
        cancelled_id, kept_id = str(uuid.uuid4()), str(uuid.uuid4())
        requested, cancelled_name = (
            f"{variant.events}/import.requested",
            f"{variant.events}/import.cancelled",
        )
        self.step(f"Request import {cancelled_id} over the HTTP event API (POST /e/<key>)")
        answer = variant.post_event({"name": requested, "data": {"importId": cancelled_id}})
        self.stdout.write(f"   {answer}")

        self.step(f"Request import {kept_id} with inngest_client.send_sync(...)")
        ids = inngest_client.send_sync(
            Event(name=requested, data={"importId": kept_id, "batches": 4})
        )
        self.stdout.write(f"   event ids: {ids}")

        cancelled_run = wait_for(
            "the first import's run", lambda: self.run_for(variant.import_fn, cancelled_id), 10
        )
        kept_run = wait_for(
            "the second import's run", lambda: self.run_for(variant.import_fn, kept_id), 10
        )
        self.stdout.write(
            f"   runs of {variant.import_fn}: {cancelled_run.run_id}, {kept_run.run_id}"
        )
        wait_for(
            "two batches of the first import",
            lambda: (
                cancelled_run.steps.filter(status=StepStatus.COMPLETED, kind="run").count() >= 2
            ),
        )

        self.step(f"Cancel import {cancelled_id}: send {cancelled_name} with that importId")
        inngest_client.send_sync(Event(name=cancelled_name, data={"importId": cancelled_id}))
        cancelled_run = wait_for(
            "the first run to be Cancelled",
            lambda: FunctionRun.objects.filter(
                pk=cancelled_run.pk, status=RunStatus.CANCELLED
            ).first(),
            timeout=10,
        )
        steps = [s.name for s in cancelled_run.steps.order_by("position")]
        self.stdout.write(
            f"   {cancelled_run.run_id}: {cancelled_run.status} after steps {steps} "
            f"(source: {cancelled_run.cancel_source})"
        )

        self.step("The system event inngest/function.cancelled, as stored and dispatched")
        cancelled_event = wait_for(
            "inngest/function.cancelled",
            lambda: StoredEvent.objects.filter(
                name="inngest/function.cancelled", external_id=cancelled_run.run_id
            ).first(),
        )
        payload = {
            "name": cancelled_event.name,
            "data": cancelled_event.data,
            "id": cancelled_event.external_id,
            "ts": cancelled_event.ts,
        }
        print(json.dumps(payload, indent=2))

        self.step("The cleanup function runs for that function ID and logs the import")
        cleanup = wait_for(
            "the cleanup run to complete",
            lambda: FunctionRun.objects.filter(
                function_id=variant.cleanup_fn, event=cancelled_event, status=RunStatus.COMPLETED
            ).first(),
        )
        line = f"Import was cancelled: {cancelled_id}"
        wait_for(f"the log line {line!r}", lambda: variant.saw_log(line), timeout=10)
        self.stdout.write(
            f"   cleanup run {cleanup.run_id}: {cleanup.status}, output {cleanup.output}"
        )
        self.stdout.write(f"   logged: {line}")

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
        self.stdout.write(self.style.SUCCESS(f"   The seed scenario works with {variant.title}."))

    @staticmethod
    def run_for(function_id: str, import_id: str) -> FunctionRun | None:
        return (
            FunctionRun.objects.filter(function_id=function_id, event__data__importId=import_id)
            .select_related("event")
            .first()
        )
