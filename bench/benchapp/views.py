"""The HTTP baseline for ingest.py: store events with the plain ORM, no validation or routing."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from django_inngest.ids import new_ulid
from django_inngest.models import Event


def event_row(payload: dict[str, Any], now: datetime, now_ms: int) -> Event:
    return Event(
        internal_id=new_ulid(now_ms),
        name=payload["name"],
        data=payload.get("data") or {},
        user=payload.get("user") or {},
        ts=payload.get("ts") or now_ms,
        received_at=now,
    )


@csrf_exempt
def raw_events(request: HttpRequest) -> JsonResponse:
    parsed = json.loads(request.body)
    now = timezone.now()
    now_ms = int(time.time() * 1000)
    if isinstance(parsed, dict):
        event = event_row(parsed, now, now_ms)
        event.save(force_insert=True)
        ids = [event.internal_id]
    else:
        events = [event_row(p, now, now_ms) for p in parsed]
        Event.objects.bulk_create(events)
        ids = [e.internal_id for e in events]
    return JsonResponse({"ids": ids, "status": 200})
