"""The one way the console writes an instant: ISO 8601 with its zone, in the site's time zone.

Every page, tooltip and column uses it (the admin's default drops seconds and the zone), so a
time copied from one place can be compared with, or pasted into, any other, including the REST
API's RFC 3339 timestamps.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def iso(value: datetime) -> str:
    """``2026-11-26T14:03:05Z`` in UTC, ``2026-11-26T15:03:05+01:00`` elsewhere."""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    text = local.isoformat(timespec="seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
