"""Shared checks and conversions for ``flow_control.options``: each error names the class and field."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from django_inngest.durations import describe, normalize_duration, parse_duration, to_duration_str
from django_inngest.exceptions import ConfigurationError

Duration = int | datetime.timedelta


def error(owner: str, field: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"{owner}.{field} {message}")


def check_int(owner: str, field: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(owner, field, f"must be an int, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise error(owner, field, f"must be at least {minimum}, got {value}")


def check_expression(owner: str, field: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise error(owner, field, f"must be a CEL expression string, not {type(value).__name__}")
    if not value.strip():
        raise error(owner, field, "must be a non-empty CEL expression, or left out")


def check_duration(
    owner: str,
    field: str,
    value: object,
    maximum: datetime.timedelta | None = None,
    source: str = "",
) -> None:
    """Whole seconds, at least one (inngest-py's serialiser refuses less), at most ``maximum``."""
    name = f"{owner}.{field}"
    to_duration_str(value, field=name)
    if maximum is not None and normalize_duration(value, field=name) > maximum:
        got = describe(normalize_duration(value, field=name))
        raise error(owner, field, f"must be at most {describe(maximum)}{source}, got {got}")


def duration_from(config: Mapping[str, Any], key: str, owner: str, stdlib: bool = False) -> Any:
    value = config.get(key)
    if value is None:
        return None
    return parse_duration(value, field=f"{owner}.{key}", days_and_weeks=not stdlib)


def mapping(config: object, owner: str) -> Mapping[str, Any]:
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"{owner} config must be a JSON object, got {config!r}")
    return config


def strip_none(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def duration_str(value: Duration | None, owner: str, field: str) -> str | None:
    return None if value is None else to_duration_str(value, field=f"{owner}.{field}")
