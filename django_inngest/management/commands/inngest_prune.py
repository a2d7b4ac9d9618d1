"""``manage.py inngest_prune [--older-than 7d] [--dry-run]``: apply retention now."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_inngest.conf import settings
from django_inngest.engine import retention

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``1d12h``, ``90m``, ``3600s`` or plain seconds (``3600``)."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if not parts or "".join(number + unit for number, unit in parts) != value:
            raise ValueError(
                f"{text!r} is not a duration: use e.g. 7d, 12h, 1d12h, 90m, 30s or seconds"
            ) from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: the duration must be positive")
    return timedelta(seconds=seconds)


class Command(BaseCommand):
    help = (
        "Delete runs that ended before a cutoff, with their steps, and the events no run, wait "
        "or batch still needs, in small batches. The cutoff is --older-than ago, or "
        "DJANGO_INNGEST_RETENTION. Workers do this continuously; run this to catch up at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            help="e.g. 7d, 12h, 1d12h, 90m or seconds; default: DJANGO_INNGEST_RETENTION.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=retention.BATCH_RUNS,
            help=f"Runs per transaction (default {retention.BATCH_RUNS}).",
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=None,
            help="Seconds to sleep between batches. Default: as long as the last batch took, "
            "so that pruning uses at most about half of one core and of the database's time "
            "and the workers and the event API keep theirs; 0 prunes flat out.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = self._older_than(options["older_than"])
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if options["pause"] is not None and options["pause"] < 0:
            raise CommandError("--pause must not be negative")
        cutoff = timezone.now() - older_than
        if options["dry_run"]:
            counted = retention.count_prunable(cutoff)
            self.stdout.write(
                f"Would delete {counted.runs} run(s), {counted.steps} step(s) and "
                f"{counted.events} event(s) from before {cutoff.isoformat()}."
            )
            return
        self._prune(cutoff, options["batch_size"], options["pause"], options["verbosity"])

    def _older_than(self, option: str | None) -> timedelta:
        if option is not None:
            try:
                return parse_duration(option)
            except ValueError as exc:
                raise CommandError(f"--older-than: {exc}") from exc
        if settings.RETENTION is None:
            raise CommandError(
                "DJANGO_INNGEST_RETENTION is None (keep everything): give --older-than"
            )
        return settings.RETENTION

    def _prune(self, cutoff: Any, batch_size: int, pause: float | None, verbosity: int) -> None:
        pruner = retention.Pruner(wait=True)
        total = retention.Pruned()
        started = time.monotonic()
        while True:
            # One batch of runs or events per call, so that the pause applies between batches.
            batch_started = time.monotonic()
            pruned = pruner.prune(
                cutoff,
                budget_seconds=0.0,
                runs_batch=batch_size,
                events_batch=batch_size * 2,
            )
            total.add(pruned)
            if not pruned and not pruner.events_after:
                break
            if verbosity > 1:
                self.stdout.write(f"  {total.runs} runs, {total.events} events so far")
            rest = time.monotonic() - batch_started if pause is None else pause
            if rest > 0:
                time.sleep(rest)
        self.stdout.write(
            f"Deleted {total.runs} run(s), {total.steps} step(s) and {total.events} event(s) "
            f"from before {cutoff.isoformat()} in {time.monotonic() - started:.1f} s."
        )
