"""Settings for django_inngest, read lazily from ``DJANGO_INNGEST_*`` Django settings.

Every attribute access reads ``django.conf.settings`` again, so ``override_settings`` works and
nothing is frozen at import (the trap django-q2's ``Conf`` falls into).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings

PREFIX = "DJANGO_INNGEST_"


@dataclass(frozen=True)
class Setting:
    """One setting: its default, the Python types a value may have and, for numbers, the
    smallest value that makes sense (``above`` excludes it: durations must be positive)."""

    default: Any
    types: tuple[type, ...]
    doc: str
    minimum: float | None = None
    above: bool = False
    maximum: float | None = None

    def read(self, value: Any) -> Any:
        """The value as the engine uses it: ints accepted for a float setting become floats,
        and seconds given for a duration setting a ``timedelta``."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if timedelta in self.types and number:
            return timedelta(seconds=value)
        if float in self.types and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def out_of_range(self, value: Any) -> str | None:
        """Why a well-typed number (or duration, in seconds) is not allowed, or None."""
        if isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if self.minimum is not None and self.above and value <= self.minimum:
            return f"must be greater than {self.minimum:g}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        return None


SETTINGS: dict[str, Setting] = {
    "AUTODISCOVER_MODULE": Setting(
        "inngest_functions",
        (str, type(None)),
        "Module name autodiscovered in each app; None disables.",
    ),
    "EVENT_KEYS": Setting(
        [],
        (list, tuple),
        "Event keys accepted by POST /e/<event_key>. Empty means the event API refuses all.",
    ),
    "SIGNING_KEY": Setting(
        "",
        (str,),
        "Signing key accepted as 'Authorization: Bearer' on the REST API (raw or hashed).",
    ),
    "MAX_EVENT_BYTES": Setting(
        512 * 1024, (int,), "Largest accepted event, in bytes (Inngest OSS: 512 KiB).", minimum=1
    ),
    "MAX_EVENTS_PER_REQUEST": Setting(
        5000, (int,), "Largest JSON array accepted by the event API.", minimum=1
    ),
    "MAX_STEP_OUTPUT_BYTES": Setting(
        4 * 1024 * 1024, (int,), "Largest step output, in bytes (Inngest: 4 MB).", minimum=1
    ),
    "DEFAULT_RETRIES": Setting(
        4,
        (int,),
        "Retries per step when a function does not set `retries`.",
        minimum=0,
        maximum=20,  # Inngest's maximum, as for `retries`
    ),
    "LEASE_SECONDS": Setting(
        10.0,
        (int, float),
        "How long a worker's claim on a run lasts without a heartbeat (the worker renews it "
        "every third of this while it holds the run): a dead worker's runs resume after it.",
        minimum=0,
        above=True,
    ),
    "REDISPATCH_AFTER_SECONDS": Setting(
        10.0,
        (int, float),
        "A ready run not claimed this long after dispatch is dispatched again.",
        minimum=0,
        above=True,
    ),
    "TIMER_POLL_SECONDS": Setting(
        0.25,
        (int, float),
        "How often each worker looks for due sleeps, timeouts, retries and lost runs.",
        minimum=0,
        above=True,
    ),
    "INVOCATION_BUDGET_SECONDS": Setting(
        5.0,
        (int, float),
        "How long one worker task keeps advancing a run before yielding the worker.",
        minimum=0,
        above=True,
    ),
    "DISPATCH_BATCH_SIZE": Setting(
        25,
        (int,),
        "Most runs one worker task advances, among runs started by one transaction.",
        minimum=1,
    ),
    "THREADS_PER_WORKER": Setting(
        4,
        (int,),
        "Runs one worker process advances at once, each on its own thread and database "
        "connection (PostgreSQL; SQLite advances one at a time).",
        minimum=1,
    ),
    "RETRY_BACKOFF_SECONDS": Setting(
        2.0, (int, float), "First retry delay; doubles per attempt, with jitter.", minimum=0
    ),
    "RETRY_BACKOFF_MAX_SECONDS": Setting(600.0, (int, float), "Longest retry delay.", minimum=0),
    "DEDUPE_WINDOW_SECONDS": Setting(
        24 * 3600,
        (int,),
        "A repeated sender event id within this window starts no function.",
        minimum=0,
    ),
    "STOP_GRACE_SECONDS": Setting(
        1.0,
        (int, float),
        "How long a stopping worker lets its steps in flight finish before it hands their runs "
        "back to other workers (the steps then run again there).",
        minimum=0,
        maximum=3600,
    ),
    "FUNCTION_NOT_FOUND_GRACE_SECONDS": Setting(
        600.0,
        (int, float),
        "How long a run whose function a worker does not know (a rolling deploy) is handed "
        "back for a worker that has it, before it fails with FunctionNotFoundError.",
        minimum=0,
        maximum=7 * 24 * 3600,
    ),
    "Q_CLUSTER_NAME": Setting(
        None,
        (str, type(None)),
        "django-q2 cluster (queue) that runs executions; None is the default one.",
    ),
    # -- serving apps written with the official SDK (README: "Serve functions written with the
    # Inngest SDK"); SIGNING_KEY signs our calls and authenticates theirs.
    "SDK_MODE": Setting(
        "cloud",
        (str,),
        "'cloud': SDK apps must hold the signing key (signed calls both ways); 'dev': as the "
        "Inngest Dev Server, unauthenticated syncs are accepted and answers need no signature.",
    ),
    "SDK_SIGNING_KEY_FALLBACK": Setting(
        "", (str,), "A second signing key accepted from SDK apps while keys are rotated."
    ),
    "SDK_ALLOWED_HOSTS": Setting(
        None,
        (list, tuple, type(None)),
        "Hosts SDK apps may be served from ('app.example.com', '*.example.com', '.example.com', "
        "'10.0.0.5:8000'); None means Django's ALLOWED_HOSTS.",
    ),
    "SDK_ALLOWED_NETWORKS": Setting(
        [],
        (list, tuple),
        "Non-public networks SDK apps may resolve to (CIDRs such as '10.0.0.0/8'); loopback and "
        "private addresses are refused otherwise.",
    ),
    "SDK_HTTP_TIMEOUT_SECONDS": Setting(
        300.0,
        (int, float),
        "How long a call to an SDK app may take: longer than the longest step.",
        minimum=0,
        above=True,
    ),
    "SDK_CONNECT_TIMEOUT_SECONDS": Setting(
        10.0, (int, float), "How long connecting to an SDK app may take.", minimum=0, above=True
    ),
    "SDK_INLINE_STATE_MAX_BYTES": Setting(
        2 * 1024 * 1024,
        (int,),
        "Larger call requests send no state; the SDK fetches it from /v0/runs/<id>/... (keep "
        "it under the SDK app's DATA_UPLOAD_MAX_MEMORY_SIZE).",
        minimum=1024,
    ),
    "SDK_CATALOG_REFRESH_SECONDS": Setting(
        1.0,
        (int, float),
        "How often a process checks whether SDK apps were synced elsewhere (0: every lookup).",
        minimum=0,
    ),
    "RETENTION": Setting(
        timedelta(days=30),
        (timedelta, int, float, type(None)),
        "How long ended runs (with their steps) and the events nothing needs are kept: a "
        "timedelta or seconds; None keeps everything. Workers prune a little at a time.",
        minimum=0,
        above=True,
    ),
}


class InngestSettings:
    """Reads ``DJANGO_INNGEST_<NAME>`` on every access, falling back to the default.

    The annotations are the types callers get: a duration given as an int comes back a float.
    System check E001 reports a value of the wrong type, so the engine never casts.
    """

    AUTODISCOVER_MODULE: str | None
    EVENT_KEYS: list[str]
    SIGNING_KEY: str
    MAX_EVENT_BYTES: int
    MAX_EVENTS_PER_REQUEST: int
    MAX_STEP_OUTPUT_BYTES: int
    DEFAULT_RETRIES: int
    LEASE_SECONDS: float
    REDISPATCH_AFTER_SECONDS: float
    TIMER_POLL_SECONDS: float
    INVOCATION_BUDGET_SECONDS: float
    DISPATCH_BATCH_SIZE: int
    THREADS_PER_WORKER: int
    RETRY_BACKOFF_SECONDS: float
    RETRY_BACKOFF_MAX_SECONDS: float
    DEDUPE_WINDOW_SECONDS: int
    STOP_GRACE_SECONDS: float
    FUNCTION_NOT_FOUND_GRACE_SECONDS: float
    Q_CLUSTER_NAME: str | None
    SDK_MODE: str
    SDK_SIGNING_KEY_FALLBACK: str
    SDK_ALLOWED_HOSTS: list[str] | None
    SDK_ALLOWED_NETWORKS: list[str]
    SDK_HTTP_TIMEOUT_SECONDS: float
    SDK_CONNECT_TIMEOUT_SECONDS: float
    SDK_INLINE_STATE_MAX_BYTES: int
    SDK_CATALOG_REFRESH_SECONDS: float
    RETENTION: timedelta | None

    def __getattr__(self, name: str) -> Any:
        try:
            setting = SETTINGS[name]
        except KeyError:
            raise AttributeError(f"Unknown django_inngest setting {name!r}") from None
        return setting.read(getattr(django_settings, PREFIX + name, setting.default))

    def raw(self, name: str) -> Any:
        """The value as configured, unconverted (for system checks)."""
        return getattr(django_settings, PREFIX + name, SETTINGS[name].default)


settings = InngestSettings()
