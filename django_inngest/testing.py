"""Helpers for tests of projects that use django_inngest."""

from __future__ import annotations

import time

from django.utils import timezone

from django_inngest.engine import worker
from django_inngest.models import FunctionRun


def drain(*, timeout: float = 10.0, until_idle: bool = True) -> int:
    """Advance every ready run inline, in this process, until none is ready now.

    Runs that sleep or wait stay paused. Returns how many advances ran. Useful with django-q2
    in sync mode or with no worker at all; it uses the same claim and lease as a worker.
    """
    advanced = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = list(
            FunctionRun.objects.ready(timezone.now())
            .filter(lease_owner="")
            .order_by("ready_at")
            .values_list("run_id", flat=True)
        )
        progressed = False
        for run_id in ids:
            if worker.advance(run_id) != "skipped":
                advanced += 1
                progressed = True
        if not progressed or not until_idle:
            break
    return advanced
