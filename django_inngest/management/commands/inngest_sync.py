from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_inngest.registrations import sync_registrations


class Command(BaseCommand):
    help = "Sync function registrations from code; functions gone from code become inactive."

    def handle(self, *args: Any, **options: Any) -> None:
        active, deactivated = sync_registrations()
        self.stdout.write(f"Synced {active} active function(s); deactivated {deactivated}.")
