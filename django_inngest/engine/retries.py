"""Retry or fail: decided here, once, for steps and for handlers alike.

Inngest retries a failed step, and a handler error raised outside any step (its final "step"),
up to the function's ``retries`` with backoff. ``NonRetriableError`` and a ``StepError`` the
handler let through fail at once, as does an ``ExpressionError`` (an invalid expression stays
invalid); ``RetryAfterError`` sets the next attempt's time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django_inngest.conf import settings
from django_inngest.exceptions import (
    ExpressionError,
    NonRetriableError,
    RetryAfterError,
    StepError,
)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: base·2^(attempt-1), capped, times 0.5 to 1.0."""
    base = settings.RETRY_BACKOFF_SECONDS
    cap = settings.RETRY_BACKOFF_MAX_SECONDS
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Failure:
    """How an attempt failed, as far as retrying is concerned."""

    retriable: bool
    #: Seconds a ``RetryAfterError`` asked for, else None (the backoff decides).
    retry_after: float | None = None

    @classmethod
    def of(cls, exc: BaseException, now: datetime) -> Failure:
        if isinstance(exc, NonRetriableError | StepError | ExpressionError):
            return cls(retriable=False)
        if isinstance(exc, RetryAfterError):
            return cls(retriable=True, retry_after=exc.delay_seconds(now))
        return cls(retriable=True)


#: A worker that died: always worth another attempt, at once.
WORKER_DIED = Failure(retriable=True, retry_after=0.0)


def next_attempt_at(failure: Failure, attempts: int, limit: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` attempts (this one included), or None to fail for
    good: ``limit`` retries follow the first attempt."""
    if not failure.retriable or attempts > limit:
        return None
    delay = failure.retry_after if failure.retry_after is not None else backoff_seconds(attempts)
    return now + timedelta(seconds=delay)
