"""Raw django-q2 tasks: the baseline that steps.py compares our runs with."""

from __future__ import annotations

import os
import time

_fds: dict[str, int] = {}


def noop_mark(path: str) -> None:
    """A no-op task that leaves one fixed-width line, its end time, in ``path``.

    An ``O_APPEND`` write of 18 bytes costs a few microseconds and no database write, so the
    baseline stays a no-op while its completions can still be counted with ``save_limit=-1``.
    """
    fd = _fds.get(path)
    if fd is None:
        fd = _fds[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{time.time():017.6f}\n".encode())


def write_mark(batch: str) -> None:
    """A minimal durable task: one INSERT, committed (autocommit), as one step's checkpoint."""
    from django.utils import timezone

    from bench.benchapp.models import Mark

    Mark.objects.create(batch=batch, done_at=timezone.now())
