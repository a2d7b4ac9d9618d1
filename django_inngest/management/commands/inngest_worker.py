"""``manage.py inngest_worker``: django-q2's cluster (``qcluster``) with a graceful stop.

On SIGTERM or SIGINT, sent to the main process alone or to every process of the cluster at once
(systemd's default ``KillMode=control-group``, Ctrl-C in a terminal), each worker hands its runs
back at once (after ``DJANGO_INNGEST_STOP_GRACE_SECONDS`` for steps in flight) so that other
workers resume them, and the cluster exits. ``manage.py qcluster`` hangs when every process gets
SIGTERM at once.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from django_inngest import executor


class Command(BaseCommand):
    help = (
        "Run a django-q2 cluster that executes django_inngest runs and stops gracefully on "
        "SIGTERM or SIGINT, to its main process or to all of its processes."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        settings.SECRET_KEY  # noqa: B018 - django-q2 signs its tasks: fail now, not in a worker
        code = executor.run_cluster()
        if code:
            sys.exit(code)
