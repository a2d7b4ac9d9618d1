from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_inngest.console.timefmt import iso
from django_inngest.models import CronSchedule
from django_inngest.registrations import sync_registrations


class Command(BaseCommand):
    help = (
        "Sync function registrations and cron schedules from code; functions gone from code "
        "become inactive and their schedules stop."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        active, deactivated = sync_registrations()
        self.stdout.write(f"Synced {active} active function(s); deactivated {deactivated}.")
        schedules = list(CronSchedule.objects.order_by("function_id", "cron"))
        if schedules:
            self.stdout.write("Schedules:")
        for schedule in schedules:
            self.stdout.write(
                f"  {schedule.function_id}: {schedule.cron!r}"
                + (f" jitter {schedule.jitter}" if schedule.jitter else "")
                + f", next tick {iso(schedule.next_tick_at)}"
            )
