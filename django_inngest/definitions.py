"""The value types of inngest-py's public API: events, triggers and cancel rules.

Names and keyword names follow inngest-py 0.5 so that porting is an import swap.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django_inngest.cron import CronSchedule, parse_cron_trigger
from django_inngest.exceptions import ConfigurationError

#: Inngest allows a trailing wildcard segment, as in ``app/user.*``.
_WILDCARD_RE = re.compile(r"^[^*]+[/.]\*$")
MAX_CANCEL_RULES = 5
MAX_TRIGGERS = 10
MAX_RETRIES = 20
#: Without a timeout a cancel listener lives this long (Inngest's ``consts.CancelTimeout``).
DEFAULT_CANCEL_TIMEOUT = datetime.timedelta(days=365)


_FIELD_PATH_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def match_expression(match: str, owner: str) -> str:
    """The TypeScript SDK's ``match`` shorthand: ``"data.id"`` -> ``event.data.id == async.data.id``
    (translated in the SDK, for ``cancelOn`` and ``waitForEvent`` alike). ``owner`` names the
    field in the error."""
    if not isinstance(match, str) or not _FIELD_PATH_RE.fullmatch(match):
        raise ConfigurationError(f"{owner} must be a field path like 'data.id', got {match!r}")
    return f"event.{match} == async.{match}"


def duration_from(value: int | float | datetime.timedelta, field_name: str) -> datetime.timedelta:
    """Inngest durations: an int is milliseconds, as in inngest-py."""
    if isinstance(value, datetime.timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = datetime.timedelta(milliseconds=value)
    else:
        raise ConfigurationError(
            f"{field_name} must be milliseconds (int) or a timedelta, not {type(value).__name__}"
        )
    if result <= datetime.timedelta(0):
        raise ConfigurationError(f"{field_name} must be positive, got {result}")
    return result


@dataclass(frozen=True)
class EventValue:
    """An event, as inngest-py's ``Event`` (plus the wire fields ``user`` and ``v``); public as
    ``django_inngest.Event`` (``models.Event`` is the stored row)."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    ts: int = 0
    user: Mapping[str, Any] = field(default_factory=dict)
    v: str | None = None

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"name": self.name, "data": dict(self.data)}
        if self.id:
            payload["id"] = self.id
        if self.ts:
            payload["ts"] = self.ts
        if self.user:
            payload["user"] = dict(self.user)
        if self.v is not None:
            payload["v"] = self.v
        return payload


@dataclass(frozen=True)
class TriggerEvent:
    """Run the function for each event named ``event`` whose CEL ``expression`` holds."""

    event: str
    expression: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event.strip():
            raise ConfigurationError("TriggerEvent.event must be a non-empty event name")
        if "*" in self.event and not _WILDCARD_RE.match(self.event):
            raise ConfigurationError(
                f"TriggerEvent.event {self.event!r}: a wildcard must be the whole last segment, "
                "as in 'app/user.*'"
            )
        if self.expression is not None and not isinstance(self.expression, str):
            raise ConfigurationError("TriggerEvent.expression must be a string")

    @property
    def is_wildcard(self) -> bool:
        return self.event.endswith("*")

    def matches_name(self, name: str) -> bool:
        """Inngest's name match: exact, or a trailing wildcard segment as in ``app/user.*``."""
        if self.is_wildcard:
            return name.startswith(self.event[:-1])
        return name == self.event

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"event": self.event}
        if self.expression:
            config["expression"] = self.expression
        return config


@dataclass(frozen=True)
class TriggerCron:
    """Run the function on a schedule: 5-field cron with an optional ``TZ=Area/City `` prefix,
    and an optional ``jitter`` (a duration string, 1 s to 5 min) spreading each tick's start.

    Each tick starts one run with the ``inngest/scheduled.timer`` event. Validated as Inngest's
    sync validates it (``ConfigurationError`` naming the field).
    """

    cron: str
    jitter: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.cron, str):
            raise ConfigurationError("TriggerCron.cron must be a string")
        if self.jitter is not None and not isinstance(self.jitter, str):
            raise ConfigurationError("TriggerCron.jitter must be a duration string, as '30s'")
        parse_cron_trigger(self.cron, self.jitter)

    @property
    def schedule(self) -> CronSchedule:
        return parse_cron_trigger(self.cron, self.jitter)[0]

    @property
    def jitter_delta(self) -> datetime.timedelta:
        return parse_cron_trigger(self.cron, self.jitter)[1]

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"cron": self.cron}
        if self.jitter:
            config["jitter"] = self.jitter
        return config


@dataclass(frozen=True)
class Cancel:
    """Cancel a run when ``event`` arrives and ``if_exp`` holds (``event`` = trigger, ``async`` = incoming).

    ``match="data.importId"`` is the TypeScript SDK's shorthand for
    ``event.data.importId == async.data.importId``; it cannot be combined with ``if_exp``.
    """

    event: str
    if_exp: str | None = None
    timeout: int | datetime.timedelta | None = None
    match: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event.strip():
            raise ConfigurationError("Cancel.event must be a non-empty event name")
        if self.if_exp is not None and self.match is not None:
            raise ConfigurationError("Cancel.if_exp and Cancel.match cannot be combined")
        if self.match is not None:
            match_expression(self.match, "Cancel.match")
        if self.timeout is not None:
            duration_from(self.timeout, "Cancel.timeout")

    @property
    def expression(self) -> str | None:
        if self.match is not None:
            return match_expression(self.match, "Cancel.match")
        return self.if_exp

    @property
    def window(self) -> datetime.timedelta:
        if self.timeout is None:
            return DEFAULT_CANCEL_TIMEOUT
        return duration_from(self.timeout, "Cancel.timeout")

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"event": self.event}
        if self.expression:
            config["if"] = self.expression
        if self.timeout is not None:
            config["timeout"] = f"{int(self.window.total_seconds())}s"
        return config
