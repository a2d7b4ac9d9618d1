"""While the database is unreachable (a restart, a failover, a full connection pool), the event
API and the REST API answer ``503`` with ``Retry-After`` in their own JSON shapes, instead of
Django's HTML 500 page; senders (the SDKs retry 5xx) then simply try again.

Each process logs an outage once, when it starts, and once more when a request succeeds again,
rather than a traceback per request: during a database restart every request fails the same way,
and a log flooded with identical tracebacks hides what else went wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TypeVar

from django.db import InterfaceError, OperationalError
from django.http.response import HttpResponseBase

logger = logging.getLogger("django_inngest.api")

#: What a lost or refused connection raises (Django wraps each driver's errors in these).
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
#: Seconds a client is told to wait: about what a PostgreSQL restart or failover takes.
RETRY_AFTER_SECONDS = 5
MESSAGE = "The database is unavailable; retry later"


def is_database_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_ERRORS)


Response = TypeVar("Response", bound=HttpResponseBase)


def already_logged(response: Response) -> Response:
    """Keep Django's ``django.request`` logger from adding an error line per 503: the outage
    is logged once here (``log_response`` skips a response marked so)."""
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class Outage:
    """This process's view of the database: up, or down since a given moment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, where: str) -> None:
        with self._lock:
            first = self._since is None
            if first:
                self._since = time.monotonic()
        if first:
            logger.error(
                "Database unavailable (%s: %s) at %s: answering 503 with Retry-After %d s "
                "until it is back",
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                where,
                RETRY_AFTER_SECONDS,
            )
        else:
            logger.debug("Database still unavailable at %s: %s", where, exc)

    def succeeded(self) -> None:
        if self._since is None:  # the usual case: one attribute read, no lock
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            logger.warning(
                "Database available again after %.1f s of 503s", time.monotonic() - since
            )


outage = Outage()
