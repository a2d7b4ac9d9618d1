"""Flow-control options: inngest-py 0.5's value classes, validated as Inngest validates them.

Names, keywords, types and defaults are inngest-py's (``inngest._internal.server_lib
.registration``). Those are pydantic models that take keywords only, so these frozen
dataclasses are keyword-only too: ``Throttle(limit=10, period=timedelta(minutes=1))``
ports by changing the import. Durations are ``int`` milliseconds or ``timedelta``.

Each class checks its values at construction and raises ``ConfigurationError`` naming the
class and field. Bounds come from Inngest's server where it has them (``pkg/inngest``),
else from its documentation; ``docs/flow-control.md`` lists which is which. Keys are CEL
expressions evaluated against the triggering event; here they only have to be non-empty
strings (the expression compiler checks them elsewhere).

``to_config()`` gives the registration JSON exactly as inngest-py's ``FunctionConfig``
serialises it (camelCase, ``None`` left out, durations as ``"90s"``-style strings);
``from_config()`` reads such JSON back, durations as ``timedelta``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from django_inngest.durations import describe, normalize_duration, to_duration_str
from django_inngest.exceptions import ConfigurationError
from django_inngest.flow_control.fields import (
    Duration,
    check_duration,
    check_expression,
    check_int,
    duration_from,
    duration_str,
    error,
    mapping,
    strip_none,
)

ConcurrencyScope = Literal["account", "env", "fn"]
SingletonMode = Literal["skip", "cancel"]

#: ``consts.MinDebouncePeriod`` / ``MaxDebouncePeriod``.
DEBOUNCE_PERIOD_MIN = datetime.timedelta(seconds=1)
DEBOUNCE_PERIOD_MAX = datetime.timedelta(days=7)
#: ``RateLimit.IsValid``: no longer than ``consts.FunctionIdempotencyPeriod``.
RATE_LIMIT_PERIOD_MAX = datetime.timedelta(hours=24)
#: Inngest's throttling guide: "Period must be between 1s and 7d" (the server does not check).
THROTTLE_PERIOD_MAX = datetime.timedelta(days=7)
#: ``EventBatchConfig.IsValid``: a batch holds at least two events.
BATCH_MIN_SIZE = 2
#: ``consts.PriorityFactorMin/Max``: the server clamps ``priority.run`` to +-12 hours
#: (in seconds). Inngest's docs say -600..600; the code allows more.
PRIORITY_FACTOR_MIN = -12 * 60 * 60
PRIORITY_FACTOR_MAX = 12 * 60 * 60


@dataclass(frozen=True, kw_only=True)
class Concurrency:
    """At most ``limit`` steps executing at once, per value of ``key``, within ``scope``.

    ``limit=0`` means no limit (Inngest's docs). ``scope`` ``"env"`` or ``"account"`` shares
    the limit across functions and needs a ``key`` naming the shared virtual queue.
    """

    key: str | None = None
    limit: int
    scope: ConcurrencyScope | None = None

    def __post_init__(self) -> None:
        check_expression("Concurrency", "key", self.key)
        check_int("Concurrency", "limit", self.limit, 0)
        if self.scope not in (None, "account", "env", "fn"):
            raise error(
                "Concurrency", "scope", f"must be 'fn', 'env' or 'account', got {self.scope!r}"
            )
        if self.scope in ("env", "account") and self.key is None:
            raise error(
                "Concurrency",
                "key",
                f"is required with scope={self.scope!r}: it names the queue that functions "
                "share (for example '\"openai\"')",
            )

    def to_config(self) -> dict[str, Any]:
        return strip_none(key=self.key, limit=self.limit, scope=self.scope)

    @classmethod
    def from_config(cls, config: object) -> Self:
        data = mapping(config, "Concurrency")
        return cls(key=data.get("key"), limit=data.get("limit"), scope=data.get("scope"))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class Throttle:
    """Start at most ``limit`` runs per ``period`` (plus ``burst``), per ``key``; queue the rest."""

    key: str | None = None
    limit: int
    period: Duration
    burst: int | None = 1

    def __post_init__(self) -> None:
        check_expression("Throttle", "key", self.key)
        check_int("Throttle", "limit", self.limit, 1)
        check_duration(
            "Throttle", "period", self.period, THROTTLE_PERIOD_MAX, " (Inngest's documented limit)"
        )
        if self.burst is not None:
            check_int("Throttle", "burst", self.burst, 0)

    def to_config(self) -> dict[str, Any]:
        return strip_none(
            key=self.key,
            limit=self.limit,
            period=duration_str(self.period, "Throttle", "period"),
            burst=self.burst,
        )

    @classmethod
    def from_config(cls, config: object) -> Self:
        data = mapping(config, "Throttle")
        return cls(
            key=data.get("key"),
            limit=data.get("limit"),  # type: ignore[arg-type]
            period=duration_from(data, "period", "Throttle"),
            burst=data.get("burst"),
        )


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """Start at most ``limit`` runs per ``period`` per ``key``; events over it are dropped."""

    key: str | None = None
    limit: int
    period: Duration

    def __post_init__(self) -> None:
        check_expression("RateLimit", "key", self.key)
        check_int("RateLimit", "limit", self.limit, 1)
        check_duration("RateLimit", "period", self.period, RATE_LIMIT_PERIOD_MAX)

    def to_config(self) -> dict[str, Any]:
        return strip_none(
            key=self.key,
            limit=self.limit,
            period=duration_str(self.period, "RateLimit", "period"),
        )

    @classmethod
    def from_config(cls, config: object) -> Self:
        data = mapping(config, "RateLimit")
        return cls(
            key=data.get("key"),
            limit=data.get("limit"),  # type: ignore[arg-type]
            period=duration_from(data, "period", "RateLimit"),
        )


@dataclass(frozen=True, kw_only=True)
class Debounce:
    """Run once ``period`` after the last matching event per ``key``, with that last event.

    ``timeout`` caps how long a stream of events can keep pushing the run back.
    """

    key: str | None = None
    period: Duration
    timeout: Duration | None = None

    def __post_init__(self) -> None:
        check_expression("Debounce", "key", self.key)
        check_duration("Debounce", "period", self.period, DEBOUNCE_PERIOD_MAX)
        if self.timeout is not None:
            check_duration("Debounce", "timeout", self.timeout)

    def to_config(self) -> dict[str, Any]:
        return strip_none(
            key=self.key,
            period=duration_str(self.period, "Debounce", "period"),
            timeout=duration_str(self.timeout, "Debounce", "timeout"),
        )

    @classmethod
    def from_config(cls, config: object) -> Self:
        data = mapping(config, "Debounce")
        return cls(
            key=data.get("key"),
            period=duration_from(data, "period", "Debounce"),
            timeout=duration_from(data, "timeout", "Debounce"),
        )


@dataclass(frozen=True, kw_only=True)
class Batch:
    """Collect up to ``max_size`` events (per ``key``) or wait ``timeout``, then run once.

    Events for which ``if_exp`` is false (or fails) run alone, at once. inngest-py lets
    ``timeout`` default to ``None``, but Inngest refuses a batch without one, so it is
    required here; and Inngest reads it with Go's ``time.ParseDuration``, which has no
    ``d``/``w`` units, so a whole number of days (serialised ``"1d"``) is refused too.
    """

    max_size: int
    timeout: Duration | None = None
    key: str | None = None
    if_exp: str | None = None

    def __post_init__(self) -> None:
        check_int("Batch", "max_size", self.max_size, BATCH_MIN_SIZE)
        if self.timeout is None:
            raise error("Batch", "timeout", "is required: Inngest refuses a batch without one")
        check_duration("Batch", "timeout", self.timeout)
        text = to_duration_str(self.timeout, field="Batch.timeout")
        if text.endswith(("d", "w")):
            raise error(
                "Batch",
                "timeout",
                f"of {describe(normalize_duration(self.timeout, field='Batch.timeout'))} is "
                f"written {text!r}, which Inngest's batch parser (Go time.ParseDuration) "
                "refuses; use a duration that is not a whole number of days",
            )
        check_expression("Batch", "key", self.key)
        check_expression("Batch", "if_exp", self.if_exp)

    def to_config(self) -> dict[str, Any]:
        return strip_none(
            maxSize=self.max_size,
            timeout=duration_str(self.timeout, "Batch", "timeout"),
            key=self.key,
            **{"if": self.if_exp},
        )

    @classmethod
    def from_config(cls, config: object) -> Self:
        data = mapping(config, "Batch")
        return cls(
            max_size=data.get("maxSize"),  # type: ignore[arg-type]
            timeout=duration_from(data, "timeout", "Batch", stdlib=True),
            key=data.get("key"),
            if_exp=data.get("if"),
        )


@dataclass(frozen=True, kw_only=True)
class Priority:
    """``run``: a CEL expression over the event giving seconds to move the run up the queue."""

    run: str

    def __post_init__(self) -> None:
        if self.run is None:
            raise error("Priority", "run", "is required")
        check_expression("Priority", "run", self.run)

    def to_config(self) -> dict[str, Any]:
        return {"run": self.run}

    @classmethod
    def from_config(cls, config: object) -> Self:
        return cls(run=mapping(config, "Priority").get("run"))  # type: ignore[arg-type]


def priority_factor(evaluated: object) -> int:
    """The queue shift, in seconds, for ``Priority.run``'s value: as ``RunPriorityFactor``.

    An integer is clamped to +-12 hours; anything else (a float, a bool, an error) counts as
    0, because the executor ignores the evaluation error.
    """
    if isinstance(evaluated, bool) or not isinstance(evaluated, int):
        return 0
    return max(PRIORITY_FACTOR_MIN, min(PRIORITY_FACTOR_MAX, evaluated))


@dataclass(frozen=True, kw_only=True)
class Singleton:
    """One run at a time per ``key``: ``mode="skip"`` drops newcomers, ``"cancel"`` replaces."""

    key: str | None = None
    mode: SingletonMode

    def __post_init__(self) -> None:
        check_expression("Singleton", "key", self.key)
        if self.mode not in ("skip", "cancel"):
            raise error("Singleton", "mode", f"must be 'skip' or 'cancel', got {self.mode!r}")

    def to_config(self) -> dict[str, Any]:
        return strip_none(key=self.key, mode=self.mode)

    @classmethod
    def from_config(cls, config: object) -> Self:
        data = mapping(config, "Singleton")
        return cls(key=data.get("key"), mode=data.get("mode"))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Cancel a run not started within ``start`` of being queued, or not done ``finish``
    after it started."""

    start: Duration | None = None
    finish: Duration | None = None

    def __post_init__(self) -> None:
        if self.start is not None:
            check_duration("Timeouts", "start", self.start)
        if self.finish is not None:
            check_duration("Timeouts", "finish", self.finish)

    def to_config(self) -> dict[str, Any]:
        return strip_none(
            start=duration_str(self.start, "Timeouts", "start"),
            finish=duration_str(self.finish, "Timeouts", "finish"),
        )

    @classmethod
    def from_config(cls, config: object) -> Self:
        data = mapping(config, "Timeouts")
        return cls(
            start=duration_from(data, "start", "Timeouts"),
            finish=duration_from(data, "finish", "Timeouts"),
        )


#: ``consts.MaxConcurrencyLimits`` and ``consts.MaxCancellations``.
MAX_CONCURRENCY_LIMITS = 2
MAX_CANCELLATIONS = 5

_OPTION_CLASSES: dict[str, type] = {
    "batch_events": Batch,
    "debounce": Debounce,
    "priority": Priority,
    "rate_limit": RateLimit,
    "singleton": Singleton,
    "throttle": Throttle,
    "timeouts": Timeouts,
}


def validate_combination(
    fn_id: str,
    *,
    batch_events: Batch | None = None,
    cancel: Sequence[object] | None = None,
    concurrency: Sequence[Concurrency] | None = None,
    debounce: Debounce | None = None,
    idempotency: str | None = None,
    priority: Priority | None = None,
    rate_limit: RateLimit | None = None,
    singleton: Singleton | None = None,
    throttle: Throttle | None = None,
    timeouts: Timeouts | None = None,
    cron_expressions: Sequence[str] = (),
) -> None:
    """Refuse the option combinations Inngest refuses; messages start with ``fn_id``.

    From ``Function.Validate`` (``pkg/inngest/function.go``) and ``MultipleTriggers.Validate``
    (``trigger.go``): at most two concurrency limits and five cancel rules; batching excludes
    cancellation, debounce, singleton and ``priority.run``; no cron expression twice. From
    the TypeScript SDK (inngest-js#276): batching excludes ``rate_limit``, and so
    ``idempotency``, which Inngest turns into a rate limit. And ``idempotency`` with
    ``rate_limit``: Inngest keeps only the idempotency one (``pkg/sdk/function.go``),
    silently, so it is refused here.
    """
    given = {
        "batch_events": batch_events,
        "debounce": debounce,
        "priority": priority,
        "rate_limit": rate_limit,
        "singleton": singleton,
        "throttle": throttle,
        "timeouts": timeouts,
    }
    for name, value in given.items():
        expected = _OPTION_CLASSES[name]
        if value is not None and not isinstance(value, expected):
            raise ConfigurationError(
                f"{fn_id}: {name} must be a django_inngest {expected.__name__}, not "
                f"{type(value).__module__}.{type(value).__qualname__}; import it from "
                "django_inngest"
            )
    limits = list(concurrency or [])
    for index, limit in enumerate(limits):
        if not isinstance(limit, Concurrency):
            raise ConfigurationError(
                f"{fn_id}: concurrency[{index}] must be a django_inngest Concurrency, not "
                f"{type(limit).__module__}.{type(limit).__qualname__}"
            )
    if len(limits) > MAX_CONCURRENCY_LIMITS:
        raise ConfigurationError(
            f"{fn_id}: concurrency has {len(limits)} limits; Inngest allows at most "
            f"{MAX_CONCURRENCY_LIMITS}"
        )
    cancels = list(cancel or [])
    if len(cancels) > MAX_CANCELLATIONS:
        raise ConfigurationError(
            f"{fn_id}: cancel has {len(cancels)} rules; Inngest allows at most {MAX_CANCELLATIONS}"
        )
    if idempotency is not None and (not isinstance(idempotency, str) or not idempotency.strip()):
        raise ConfigurationError(f"{fn_id}: idempotency must be a non-empty CEL expression")
    if idempotency is not None and rate_limit is not None:
        raise ConfigurationError(
            f"{fn_id}: idempotency and rate_limit cannot be combined: Inngest replaces the "
            "rate limit with idempotency's (1 run per key per 24 hours) and drops yours"
        )
    if batch_events is not None:
        excluded = {
            "cancel": bool(cancels),
            "debounce": debounce is not None,
            "singleton": singleton is not None,
            "priority": priority is not None,
            "rate_limit": rate_limit is not None,
            "idempotency": idempotency is not None,
        }
        for name, present in excluded.items():
            if present:
                raise ConfigurationError(
                    f"{fn_id}: batch_events cannot be combined with {name}; "
                    f"{_BATCH_EXCLUSION_REASONS[name]}"
                )
    seen: set[str] = set()
    for expression in cron_expressions:
        if expression in seen:
            raise ConfigurationError(
                f"{fn_id}: the cron expression {expression!r} appears twice; Inngest refuses "
                "duplicate cron triggers (even with different jitter)"
            )
        seen.add(expression)


_BATCH_EXCLUSION_REASONS = {
    "cancel": "Inngest refuses it ('Batching and cancellation are mutually exclusive')",
    "debounce": "Inngest refuses it ('Batching and debouncing are mutually exclusive')",
    "singleton": "Inngest refuses it ('Batching and singletons are mutually exclusive')",
    "priority": "Inngest refuses it ('A function cannot specify Priority.Run and Batch together')",
    "rate_limit": "Inngest's TypeScript SDK refuses it (rate limits are unsupported with batching)",
    "idempotency": "idempotency is a rate limit, which batching excludes",
}
