"""``manage.py inngest_sync_app <serve url>``: sync an app written with the official SDK."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_inngest.sdk_apps.sync import request_sync


class Command(BaseCommand):
    help = (
        "Ask an app that serves functions with the official Inngest SDK (e.g. "
        "https://app.example.com/api/inngest) to sync them here, and report its answer."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="The app's serve URL, where inngest's serve() answers.")
        parser.add_argument(
            "--out-of-band",
            action="store_true",
            help="Do not ask for an in-band sync: the app then POSTs its functions to this "
            "server's /fn/register (which must be reachable from it).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = request_sync(options["url"], in_band=not options["out_of_band"])
        if not outcome.ok:
            # The SDK answers 200 even when the sync failed: the message is what it relayed.
            raise CommandError(f"Sync failed: {outcome.message}")
        how = "in-band" if outcome.in_band else "out-of-band"
        self.stdout.write(self.style.SUCCESS(f"Synced {options['url']} ({how}): {outcome.message}"))
