"""Inngest-style durable functions for Django, executed by django-q2 workers.

The public API mirrors the official ``inngest`` Python SDK, so porting is an import swap.

Settings modules import parts of this package (``django_inngest.sqlite``) before Django's apps
are ready, so nothing here imports models: each public name is loaded on first use.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = metadata.version("django-inngest")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from django_inngest.client import Inngest
    from django_inngest.definitions import Cancel, TriggerCron, TriggerEvent
    from django_inngest.definitions import EventValue as Event
    from django_inngest.engine.cancellation import cancel_run
    from django_inngest.engine.context import Context, ContextSync
    from django_inngest.engine.steps import GroupSync, StepSync
    from django_inngest.engine.steps_async import Group, Step
    from django_inngest.exceptions import NonRetriableError, RetryAfterError, StepError
    from django_inngest.flow_control.options import (
        Batch,
        Concurrency,
        Debounce,
        Priority,
        RateLimit,
        Singleton,
        Throttle,
        Timeouts,
    )
    from django_inngest.function import Function
    from django_inngest.middleware import (
        Middleware,
        MiddlewareSync,
        StepMemos,
        TransformOutputResult,
    )
    from django_inngest.sdk_types import JSON, ParallelMode, SendEventsResult
    from django_inngest.serializers import PydanticSerializer, Serializer

#: Public name -> (module, attribute).
_EXPORTS: dict[str, tuple[str, str]] = {
    "Cancel": ("django_inngest.definitions", "Cancel"),
    # inngest-py's names: Context/Step/Group for async handlers, *Sync for sync ones.
    "Context": ("django_inngest.engine.context", "Context"),
    "ContextSync": ("django_inngest.engine.context", "ContextSync"),
    "Event": ("django_inngest.definitions", "EventValue"),
    "Function": ("django_inngest.function", "Function"),
    "Group": ("django_inngest.engine.steps_async", "Group"),
    "GroupSync": ("django_inngest.engine.steps", "GroupSync"),
    "Inngest": ("django_inngest.client", "Inngest"),
    "NonRetriableError": ("django_inngest.exceptions", "NonRetriableError"),
    "RetryAfterError": ("django_inngest.exceptions", "RetryAfterError"),
    "Step": ("django_inngest.engine.steps_async", "Step"),
    "StepError": ("django_inngest.exceptions", "StepError"),
    "StepSync": ("django_inngest.engine.steps", "StepSync"),
    "TriggerCron": ("django_inngest.definitions", "TriggerCron"),
    "TriggerEvent": ("django_inngest.definitions", "TriggerEvent"),
    "cancel_run": ("django_inngest.engine.cancellation", "cancel_run"),
    "Timeouts": ("django_inngest.flow_control.options", "Timeouts"),
    "Throttle": ("django_inngest.flow_control.options", "Throttle"),
    "Singleton": ("django_inngest.flow_control.options", "Singleton"),
    "RateLimit": ("django_inngest.flow_control.options", "RateLimit"),
    "Priority": ("django_inngest.flow_control.options", "Priority"),
    "Debounce": ("django_inngest.flow_control.options", "Debounce"),
    "Concurrency": ("django_inngest.flow_control.options", "Concurrency"),
    "Batch": ("django_inngest.flow_control.options", "Batch"),
    # inngest-py's middleware, serializer and small value types (see docs/porting-notes.md).
    "JSON": ("django_inngest.sdk_types", "JSON"),
    "Middleware": ("django_inngest.middleware", "Middleware"),
    "MiddlewareSync": ("django_inngest.middleware", "MiddlewareSync"),
    "ParallelMode": ("django_inngest.sdk_types", "ParallelMode"),
    "PydanticSerializer": ("django_inngest.serializers", "PydanticSerializer"),
    "SendEventsResult": ("django_inngest.sdk_types", "SendEventsResult"),
    "Serializer": ("django_inngest.serializers", "Serializer"),
    "StepMemos": ("django_inngest.middleware", "StepMemos"),
    "TransformOutputResult": ("django_inngest.middleware", "TransformOutputResult"),
}

__all__ = [
    "JSON",
    "Batch",
    "Cancel",
    "Concurrency",
    "Context",
    "ContextSync",
    "Debounce",
    "Event",
    "Function",
    "Group",
    "GroupSync",
    "Inngest",
    "Middleware",
    "MiddlewareSync",
    "NonRetriableError",
    "ParallelMode",
    "Priority",
    "PydanticSerializer",
    "RateLimit",
    "RetryAfterError",
    "SendEventsResult",
    "Serializer",
    "Singleton",
    "Step",
    "StepError",
    "StepMemos",
    "StepSync",
    "Throttle",
    "Timeouts",
    "TransformOutputResult",
    "TriggerCron",
    "TriggerEvent",
    "cancel_run",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'django_inngest' has no attribute {name!r}") from None
    value = getattr(import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
