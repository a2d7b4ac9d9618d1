"""The functions SDK apps serve, as every process sees them: the registry's second source.

Code functions are known at import; SDK functions arrive over HTTP, in whichever web process
received the sync, and live in the database (``FunctionRegistration`` rows with an
``sdk_app``). Every web process and worker keeps them in memory and compares a cheap stamp,
``(COUNT(*), MAX(generation))`` over ``SdkApp``, at most every
``DJANGO_INNGEST_SDK_CATALOG_REFRESH_SECONDS``: a sync writes a new ``generation`` ULID
(always larger than the last), so any sync, anywhere, changes the stamp. A lookup that finds
nothing checks at once, so a run never fails because its function was synced a moment ago in
another process; new triggers are seen within the refresh period.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db.models import Count, Max

from django_inngest.conf import settings
from django_inngest.exceptions import ConfigurationError
from django_inngest.models import FunctionRegistration, SdkApp
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk_apps.function import SdkFunction, from_stored

logger = logging.getLogger(__name__)
_NEVER = -float("inf")


class SdkCatalog:
    """SDK functions by ID (active or not: a removed function's runs may still need it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._functions: dict[str, SdkFunction] = {}
        self._stamp: tuple[Any, ...] | None = None
        self._checked_at = _NEVER
        #: Bumped whenever the set of functions changes, so trigger indexes know to rebuild.
        self.version = 0

    def refresh(self, *, force: bool = False) -> None:
        """Reload if another process (or this one) synced an app since the last look."""
        now = time.monotonic()
        if not force and now - self._checked_at < settings.SDK_CATALOG_REFRESH_SECONDS:
            return
        found = SdkApp.objects.aggregate(apps=Count("id"), generation=Max("generation"))
        stamp = (found["apps"], found["generation"])
        self._checked_at = now
        if stamp == self._stamp:
            return
        functions = self._load()
        with self._lock:
            self._functions, self._stamp = functions, stamp
            self.version += 1

    def get(self, function_id: str) -> SdkFunction | None:
        self.refresh()
        function = self._functions.get(function_id)
        if function is None:
            self.refresh(force=True)  # synced a moment ago elsewhere?
            function = self._functions.get(function_id)
        return function

    def active(self) -> list[SdkFunction]:
        self.refresh()
        return [f for f in self._functions.values() if f.is_active]

    def invalidate(self) -> None:
        """This process just synced: look again at the next lookup."""
        self._checked_at = _NEVER

    def forget(self) -> None:
        """Drop everything (tests: the database is flushed between cases)."""
        with self._lock:
            self._functions, self._stamp, self._checked_at = {}, None, _NEVER
            self.version += 1

    @staticmethod
    def _load() -> dict[str, SdkFunction]:
        rows = FunctionRegistration.objects.filter(sdk_app__isnull=False).values_list(
            "function_id", "sdk_app__app_id", "config", "is_active"
        )
        functions: dict[str, SdkFunction] = {}
        for function_id, app_id, config, active in rows:
            try:
                functions[function_id] = from_stored(app_id, config, active=active)
            except (ConfigurationError, SdkProtocolError) as error:
                # Only a config stored by an older version could fail here: skip, loudly.
                logger.error("Stored SDK function %s is unreadable: %s", function_id, error)
        return functions


catalog = SdkCatalog()
