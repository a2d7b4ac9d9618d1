"""Keyset pagination for list endpoints: newest first, ``?limit=`` and an opaque ``?cursor=``.

A page's ``metadata.next_cursor`` (``null`` on the last page) is passed back as ``cursor`` to get
the next one. It encodes the last row's (timestamp, primary key), so pages stay stable while
new rows arrive: nothing is skipped or repeated, and no OFFSET scan grows with depth.
Clients must treat the cursor as an opaque string.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet
from rest_framework.exceptions import ValidationError

from django_inngest.ids import is_ulid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def encode_cursor(moment: datetime, pk: str) -> str:
    raw = json.dumps([moment.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (timestamp, pk) a cursor encodes; anything else is a 400 naming ``cursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, pk = json.loads(raw)
        # Converting to UTC also rejects instants outside datetime's range (year 1 at +14:00),
        # which the database adapters would otherwise fail on.
        parsed = datetime.fromisoformat(moment).astimezone(UTC)
    except (binascii.Error, ValueError, TypeError, OverflowError, RecursionError):
        raise ValidationError({"cursor": "Invalid cursor."}) from None
    # Every paginated table is keyed by a ULID; checking it keeps arbitrary text (NUL bytes
    # included, which PostgreSQL refuses) out of the query.
    if not is_ulid(pk):
        raise ValidationError({"cursor": "Invalid cursor."})
    return parsed, pk


def paginate(queryset: QuerySet[M], *, time_field: str, limit: int, cursor: str | None) -> Page:
    """One page of ``queryset`` ordered by ``(-time_field, -pk)``."""
    queryset = queryset.order_by(f"-{time_field}", "-pk")
    if cursor:
        moment, pk = decode_cursor(cursor)
        queryset = queryset.filter(
            Q(**{f"{time_field}__lt": moment}) | Q(**{time_field: moment, "pk__lt": pk})
        )
    # One extra row tells whether another page exists without a COUNT.
    rows = list(queryset[: limit + 1])
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(getattr(last, time_field), str(last.pk))
    return Page(items, next_cursor)
