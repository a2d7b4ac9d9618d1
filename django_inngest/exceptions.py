"""Exceptions raised by django_inngest. ``InngestError`` is the base; do not raise it directly."""

from __future__ import annotations

import datetime
from typing import Any


class InngestError(Exception):
    """Base class for django_inngest errors. Do not raise directly."""


class ConfigurationError(InngestError):
    """A function definition or setting is invalid. The message names the field."""


class FunctionAlreadyRegisteredError(ConfigurationError):
    """Two definitions share one function ID."""


class ExpressionError(InngestError):
    """A CEL expression does not compile. ``str()`` shows where parsing failed."""

    def __init__(self, expression: str, message: str) -> None:
        self.expression = expression
        self.message = message
        super().__init__(f"invalid expression {expression!r}: {message}")


class EventValidationError(InngestError):
    """An event is malformed. The message names the field."""


class NonRetriableError(InngestError):
    """Raise from a step or handler to fail the run now, without retries (as inngest-py)."""

    def __init__(self, message: str | None = None, quiet: bool = False) -> None:
        super().__init__(message)
        self.message = message or ""
        self.quiet = quiet


class RetryAfterError(InngestError):
    """Raise to retry no earlier than ``retry_after`` (ms, timedelta or datetime), as inngest-py."""

    def __init__(
        self,
        message: str | None,
        retry_after: int | datetime.timedelta | datetime.datetime,
        quiet: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message or ""
        self.retry_after = retry_after
        self.quiet = quiet

    def delay_seconds(self, now: datetime.datetime) -> float:
        if isinstance(self.retry_after, datetime.datetime):
            return max(0.0, (self.retry_after - now).total_seconds())
        if isinstance(self.retry_after, datetime.timedelta):
            return max(0.0, self.retry_after.total_seconds())
        return max(0.0, self.retry_after / 1000)


class StepError(InngestError):
    """Raised in the handler when a step failed for good; the handler may catch it."""

    def __init__(
        self, name: str, message: str, stack: str | None = None, step_id: str = ""
    ) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.stack = stack
        self.step_id = step_id

    @classmethod
    def from_dict(cls, error: dict[str, Any], step_id: str = "") -> StepError:
        return cls(
            str(error.get("name", "Error")),
            str(error.get("message", "")),
            error.get("stack"),
            step_id,
        )


class StepOutputError(NonRetriableError):
    """A step's output is not JSON-serialisable or is larger than the limit."""
