"""Inngest-style durable functions for Django, executed by django-q2 workers.

The public API mirrors the official ``inngest`` Python SDK, so porting is an import swap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_inngest.client import Inngest
from django_inngest.context import Context
from django_inngest.definitions import Cancel, Event, TriggerCron, TriggerEvent
from django_inngest.exceptions import NonRetriableError, RetryAfterError, StepError
from django_inngest.function import Function
from django_inngest.middleware import Middleware, MiddlewareSync, StepMemos, TransformOutputResult
from django_inngest.sdk_types import JSON, ParallelMode, SendEventsResult
from django_inngest.serializers import PydanticSerializer, Serializer

if TYPE_CHECKING:
    from django_inngest.steps import Group, Step

    StepSync = Step

# inngest-py's name for its sync context, so `import django_inngest as inngest` ports as is.
ContextSync = Context


def __getattr__(name: str) -> Any:
    # The step API touches models, so it loads on first use, not when settings import us.
    if name in ("Step", "StepSync", "Group"):
        from django_inngest import steps

        return steps.Group if name == "Group" else steps.Step
    raise AttributeError(f"module 'django_inngest' has no attribute {name!r}")


if TYPE_CHECKING:
    from django_inngest.cancellation import CancelResult

__version__ = "0.1.0"

__all__ = [
    "Cancel",
    "Context",
    "ContextSync",
    "Event",
    "Function",
    "Group",
    "Inngest",
    "NonRetriableError",
    "RetryAfterError",
    "Step",
    "StepError",
    "StepSync",
    "TriggerCron",
    "TriggerEvent",
    "cancel_run",
]
# inngest-py's middleware, serializer and small value types (see docs/porting-notes.md).
__all__ += [
    "JSON",
    "Middleware",
    "MiddlewareSync",
    "ParallelMode",
    "PydanticSerializer",
    "SendEventsResult",
    "Serializer",
    "StepMemos",
    "TransformOutputResult",
]


def cancel_run(
    run_id: str, *, reason: str = "", source: str = "python", **kwargs: Any
) -> CancelResult:
    """Cancel one run; see ``django_inngest.cancellation.cancel_run``."""
    from django_inngest.cancellation import cancel_run as _cancel_run

    return _cancel_run(run_id, reason=reason, source=source, **kwargs)
