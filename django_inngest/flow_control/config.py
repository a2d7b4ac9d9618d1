"""A function's flow-control options together, to and from its registration JSON.

``FlowOptions`` holds the ``create_function`` keywords that shape when runs start
(``batch_events``, ``concurrency``, ``debounce``, ``idempotency``, ``priority``,
``rate_limit``, ``singleton``, ``throttle``, ``timeouts``). ``to_config()`` gives the
camelCase keys inngest-py's ``FunctionConfig`` sends for them; ``from_config()`` reads a
function object from an SDK's sync payload, which the SDK sync endpoint will need.
``cancel`` is not here: its class lives in ``definitions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from django_inngest.exceptions import ConfigurationError
from django_inngest.flow_control.options import (
    Batch,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
    validate_combination,
)

#: Python keyword -> registration key, in inngest-py's ``FunctionConfig`` order.
CONFIG_KEYS = {
    "batch_events": "batchEvents",
    "concurrency": "concurrency",
    "debounce": "debounce",
    "idempotency": "idempotency",
    "priority": "priority",
    "rate_limit": "rateLimit",
    "throttle": "throttle",
    "timeouts": "timeouts",
    "singleton": "singleton",
}


@dataclass(frozen=True, kw_only=True)
class FlowOptions:
    batch_events: Batch | None = None
    concurrency: tuple[Concurrency, ...] | None = None
    debounce: Debounce | None = None
    idempotency: str | None = None
    priority: Priority | None = None
    rate_limit: RateLimit | None = None
    throttle: Throttle | None = None
    timeouts: Timeouts | None = None
    singleton: Singleton | None = None

    def __post_init__(self) -> None:
        if self.concurrency is not None and not isinstance(self.concurrency, tuple):
            # A list is what inngest-py takes; keep the dataclass hashable.
            object.__setattr__(self, "concurrency", tuple(self.concurrency))

    def validate(
        self, fn_id: str, *, cancel: Sequence[object] = (), cron_expressions: Sequence[str] = ()
    ) -> None:
        """``validate_combination`` for these options plus the function's other settings."""
        validate_combination(
            fn_id,
            batch_events=self.batch_events,
            cancel=cancel,
            concurrency=self.concurrency,
            debounce=self.debounce,
            idempotency=self.idempotency,
            priority=self.priority,
            rate_limit=self.rate_limit,
            singleton=self.singleton,
            throttle=self.throttle,
            timeouts=self.timeouts,
            cron_expressions=cron_expressions,
        )

    def to_config(self) -> dict[str, Any]:
        """The registration keys inngest-py sends for these options (``None`` left out)."""
        config: dict[str, Any] = {}
        for name, key in CONFIG_KEYS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if name == "concurrency":
                config[key] = [limit.to_config() for limit in value]
            elif name == "idempotency":
                config[key] = value
            else:
                config[key] = value.to_config()
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """Read the flow-control keys of one function object from a sync payload."""
        if not isinstance(config, Mapping):
            raise ConfigurationError(f"function config must be a JSON object, got {config!r}")
        idempotency = config.get("idempotency")
        if idempotency is not None and not isinstance(idempotency, str):
            raise ConfigurationError(
                f"idempotency must be a CEL expression string, not {type(idempotency).__name__}"
            )
        return cls(
            batch_events=_optional(Batch, config.get("batchEvents")),
            concurrency=concurrency_from_config(config.get("concurrency")),
            debounce=_optional(Debounce, config.get("debounce")),
            idempotency=idempotency,
            priority=_optional(Priority, config.get("priority")),
            rate_limit=_optional(RateLimit, config.get("rateLimit")),
            throttle=_optional(Throttle, config.get("throttle")),
            timeouts=_optional(Timeouts, config.get("timeouts")),
            singleton=_optional(Singleton, config.get("singleton")),
        )


_Option = TypeVar("_Option", Batch, Debounce, Priority, RateLimit, Throttle, Timeouts, Singleton)


def _optional(kind: type[_Option], value: object) -> _Option | None:
    return None if value is None else kind.from_config(value)


def concurrency_from_config(value: object) -> tuple[Concurrency, ...] | None:
    """``concurrency`` in any shape an SDK sends it, as Inngest's server reads it.

    A number is a function-scoped limit (the TypeScript shorthand), an object one limit,
    a list up to two. The server's newer ``{"fn": [...], "step": [...]}`` form is not
    something SDKs send and is refused.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (Concurrency(limit=value),)
    if isinstance(value, Mapping):
        if "fn" in value or "step" in value:
            raise ConfigurationError(
                "concurrency in the server's {'fn': ..., 'step': ...} form is not supported; "
                "send a list of {limit, key, scope} objects"
            )
        return (Concurrency.from_config(value),)
    if isinstance(value, list):
        return tuple(Concurrency.from_config(item) for item in value)
    raise ConfigurationError(
        f"concurrency must be a number, an object or a list of objects, got {value!r}"
    )
