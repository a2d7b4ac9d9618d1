from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_inngest.engine.cancellation import (
    MAX_REASON_LENGTH,
    BulkCancellationError,
    cancel_runs,
    create_bulk_cancellation,
)
from django_inngest.models import CancelSource


def os_user() -> str:
    """Who ran the command, recorded as the actor (``cli:<OS user>``)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return "cli"


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"{option}: {value!r} is not an ISO 8601 date-time")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


class Command(BaseCommand):
    help = (
        "Cancel runs by ID, or in bulk by function, time window and an `if` expression over "
        "`event` (the same service as the admin and DELETE /v1/runs/{id})."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_ids", nargs="*", help="Run IDs to cancel.")
        parser.add_argument(
            "--reason",
            default="",
            help="Why; stored on the run, sent with the signal and in "
            "inngest/function.cancelled (with the OS user who ran the command).",
        )
        parser.add_argument("--app-id", help="Bulk: the app ID.")
        parser.add_argument("--function-id", help="Bulk: the function's local ID (fn_id).")
        parser.add_argument("--started-after", help="Bulk: ISO 8601; runs created after this.")
        parser.add_argument("--started-before", help="Bulk: ISO 8601; default now.")
        parser.add_argument("--if", dest="if_exp", help="Bulk: CEL over `event`.")

    def handle(self, *args: Any, **options: Any) -> None:
        run_ids: list[str] = options["run_ids"]
        bulk = options["function_id"] or options["app_id"]
        if bool(run_ids) == bool(bulk):
            raise CommandError(
                "give run IDs, or --app-id and --function-id for a bulk cancellation"
            )
        reason: str = options["reason"]
        if len(reason) > MAX_REASON_LENGTH:
            raise CommandError(f"--reason is longer than {MAX_REASON_LENGTH} characters")
        if run_ids:
            outcome = cancel_runs(run_ids, source=CancelSource.CLI, reason=reason, actor=os_user())
            self.stdout.write(f"Cancelled {len(outcome['cancelled'])} run(s).")
            for key, label in (
                ("already_cancelled", "already cancelled"),
                ("ended", "already ended"),
                ("missing", "not found"),
            ):
                for run_id in outcome[key]:
                    self.stderr.write(f"{run_id}: {label}")
            if outcome["missing"] or outcome["ended"]:
                raise CommandError("some runs could not be cancelled")
            return
        try:
            record, count = create_bulk_cancellation(
                app_id=options["app_id"] or "",
                function_id=options["function_id"] or "",
                started_after=_when(options["started_after"], "--started-after"),
                started_before=_when(options["started_before"], "--started-before")
                or timezone.now(),
                if_exp=options["if_exp"],
                name=reason[:255],
                source=CancelSource.CLI,
                reason=reason,
                actor=os_user(),
            )
        except BulkCancellationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Cancelled {count} run(s); bulk cancellation {record.pk} stays active.")
