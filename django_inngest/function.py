"""``Function``: one durable function definition, as built by ``Inngest.create_function``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django_inngest.conf import settings
from django_inngest.definitions import Cancel, TriggerCron, TriggerEvent
from django_inngest.flow_control.config import FlowOptions

if TYPE_CHECKING:
    from django_inngest.client import Inngest
    from django_inngest.engine.context import Context, ContextSync
    from django_inngest.middleware import UninitializedMiddleware

#: ``def handler(ctx: ContextSync)`` or ``async def handler(ctx: Context)``.
Handler = Callable[["ContextSync"], Any] | Callable[["Context"], Any]

FAILURE_SUFFIX = "-failure"
FAILED_EVENT = "inngest/function.failed"
FINISHED_EVENT = "inngest/function.finished"
CANCELLED_EVENT = "inngest/function.cancelled"
INVOKED_EVENT = "inngest/function.invoked"


@dataclass(frozen=True, eq=False)
class Function:
    """A registered function. ``id`` is Inngest's composite ``f"{app_id}-{fn_id}"``, verbatim."""

    app_id: str
    fn_id: str
    name: str
    handler: Handler
    triggers: tuple[TriggerEvent, ...]
    cancel: tuple[Cancel, ...] = ()
    #: Retries per step; None means the DJANGO_INNGEST_DEFAULT_RETRIES setting (Inngest: 4).
    retries: int | None = None
    #: The ``<id>-failure`` function built from ``on_failure``, if any.
    on_failure: Function | None = None
    #: Set on an ``on_failure`` function: the ID of the function it serves.
    failure_of: str | None = None
    source: str = field(default="")
    #: Cron triggers (``TriggerCron``), beside the event ``triggers``.
    crons: tuple[TriggerCron, ...] = ()
    #: Flow control: concurrency, throttle, rate limit, debounce, batching, priority, ...
    flow: FlowOptions = field(default_factory=FlowOptions)
    #: ``create_function(middleware=...)``: run after the client's (``engine.segments``).
    middleware: tuple[UninitializedMiddleware, ...] = ()
    #: The client that defined it: its middleware (current, ``add_middleware`` included) run
    #: first.
    client: Inngest | None = field(default=None, repr=False)
    #: ``create_function(output_type=...)``: with the client's serializer, how the function's
    #: output is stored (and how ``step.invoke`` returns it).
    output_type: object = None

    @property
    def id(self) -> str:
        return f"{self.app_id}-{self.fn_id}"

    # -- inngest-py's Function surface, which ported middleware reads ---------------------------
    def __class_getitem__(cls, item: object) -> type[Function]:
        # inngest-py's Function is generic: keep `Function[Any]` annotations valid when ported.
        return cls

    @property
    def local_id(self) -> str:
        return self.fn_id

    @property
    def on_failure_fn_id(self) -> str | None:
        return self.on_failure.id if self.on_failure is not None else None

    @property
    def is_handler_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)

    @property
    def is_on_failure_handler_async(self) -> bool | None:
        if self.on_failure is None:
            return None
        return inspect.iscoroutinefunction(self.on_failure.handler)

    def get_id(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<Function {self.id} ({self.source})>"

    @property
    def retry_limit(self) -> int:
        if self.retries is not None:
            return self.retries
        return settings.DEFAULT_RETRIES

    def config(self) -> dict[str, Any]:
        """The registration config, in the shape Inngest's sync payload uses."""
        config: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "triggers": [t.to_config() for t in self.triggers]
            + [c.to_config() for c in self.crons],
            "steps": {"step": {"retries": {"attempts": self.retry_limit}}},
        }
        if self.cancel:
            config["cancel"] = [c.to_config() for c in self.cancel]
        config.update(self.flow.to_config())
        return config


def describe_source(handler: Callable[..., Any]) -> str:
    """``module.qualname (file:line)``, used to name both sides of a duplicate ID."""
    module = getattr(handler, "__module__", "?")
    qualname = getattr(handler, "__qualname__", repr(handler))
    try:
        file = inspect.getsourcefile(handler)
        line = inspect.getsourcelines(handler)[1]
    except (OSError, TypeError):
        return f"{module}.{qualname}"
    return f"{module}.{qualname} ({file}:{line})"
