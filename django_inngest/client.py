"""``Inngest``: the client, with inngest-py's ``create_function``, ``send`` and ``send_sync``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async

from django_inngest.definitions import (
    MAX_RETRIES,
    MAX_TRIGGERS,
    Cancel,
    EventValue,
    TriggerCron,
    TriggerEvent,
)
from django_inngest.exceptions import ConfigurationError
from django_inngest.flow_control.config import FlowOptions
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
from django_inngest.function import FAILED_EVENT, FAILURE_SUFFIX, Function, Handler, describe_source
from django_inngest.handler_kinds import check_function_kinds, check_middleware_list
from django_inngest.ingest.events import send_events
from django_inngest.middleware import UninitializedMiddleware
from django_inngest.middleware.manager import MiddlewareManager
from django_inngest.registry import FunctionRegistry, registry
from django_inngest.sdk_types import SendEventsResult
from django_inngest.serializers import Serializer, check_serializer

#: inngest-py options that no part of django_inngest implements yet. Passing one raises,
#: because accepting it silently would pretend to honour it.
_UNSUPPORTED_OPTIONS: tuple[str, ...] = ()  # every inngest-py option is honoured


def _cel_string(value: str) -> str:
    """A single-quoted CEL string literal, as inngest-py writes it, escaped so any ID stays valid."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _check_flow_types(fn_id: str, **options: tuple[object, type]) -> None:
    """Each flow-control keyword holds its inngest-py class (or None)."""
    for name, (value, kind) in options.items():
        if value is not None and not isinstance(value, kind):
            raise ConfigurationError(
                f"create_function(fn_id={fn_id!r}): {name} must be a {kind.__name__}, "
                f"got {type(value).__name__}"
            )


class Inngest:
    """The client. ``app_id`` prefixes every function ID: ``f"{app_id}-{fn_id}"``."""

    def __init__(
        self,
        *,
        app_id: str,
        logger: Any = None,
        middleware: list[UninitializedMiddleware] | None = None,
        serializer: Serializer | None = None,
        **_ignored_connection_options: Any,
    ) -> None:
        # inngest-py's connection options (event_key, signing_key, api_base_url, ...) have no
        # meaning in-process; they are accepted so a ported client constructor still works.
        if not isinstance(app_id, str) or not app_id.strip():
            raise ConfigurationError("Inngest(app_id=...) must be a non-empty string")
        self.app_id = app_id
        self.logger = logger
        self.registry: FunctionRegistry = registry
        #: Client-level middleware: they run before each function's own (see middleware_manager).
        self.middleware = check_middleware_list(middleware, f"Inngest(app_id={app_id!r})")
        self.serializer = check_serializer(serializer)

    def add_middleware(self, middleware: UninitializedMiddleware) -> None:
        """Append a client-level middleware, as inngest-py's ``add_middleware``. Async
        middleware are refused if this client already defined a sync function."""
        added = check_middleware_list([middleware], f"Inngest(app_id={self.app_id!r})")
        for function in self.registry.all():
            if function.client is self:
                check_function_kinds(function.fn_id, function.handler, client_middleware=added)
        self.middleware = [*self.middleware, *added]

    def set_logger(self, logger: Any) -> None:
        self.logger = logger

    def __repr__(self) -> str:
        return f"<Inngest app_id={self.app_id!r}>"

    def create_function(
        self,
        *,
        fn_id: str,
        trigger: TriggerEvent | TriggerCron | list[TriggerEvent | TriggerCron],
        name: str | None = None,
        cancel: list[Cancel] | None = None,
        retries: int | None = None,
        on_failure: Handler | None = None,
        output_type: object = None,
        batch_events: Batch | None = None,
        concurrency: list[Concurrency] | None = None,
        debounce: Debounce | None = None,
        idempotency: str | None = None,
        priority: Priority | None = None,
        rate_limit: RateLimit | None = None,
        throttle: Throttle | None = None,
        timeouts: Timeouts | None = None,
        singleton: Singleton | None = None,
        middleware: list[UninitializedMiddleware] | None = None,
        **options: Any,
    ) -> Callable[[Handler], Function]:
        """Decorator that defines and registers a function, with inngest-py's keywords."""
        for option in options:
            if option in _UNSUPPORTED_OPTIONS:
                raise ConfigurationError(
                    f"create_function({option}=...) is an Inngest option django_inngest does not "
                    f"implement yet (function {fn_id!r})"
                )
            raise ConfigurationError(f"create_function() got an unknown option {option!r}")
        if not isinstance(fn_id, str) or not fn_id:
            raise ConfigurationError("create_function(fn_id=...) must be a non-empty string")
        triggers, crons = self._triggers(fn_id, trigger)
        cancel_rules = self._cancel_rules(fn_id, cancel)
        _check_flow_types(
            fn_id,
            batch_events=(batch_events, Batch),
            debounce=(debounce, Debounce),
            idempotency=(idempotency, str),
            priority=(priority, Priority),
            rate_limit=(rate_limit, RateLimit),
            throttle=(throttle, Throttle),
            timeouts=(timeouts, Timeouts),
            singleton=(singleton, Singleton),
        )
        if concurrency is not None and (
            not isinstance(concurrency, list | tuple)
            or not all(isinstance(c, Concurrency) for c in concurrency)
        ):
            raise ConfigurationError(
                f"create_function(fn_id={fn_id!r}): concurrency must be a list of Concurrency"
            )
        flow = FlowOptions(
            batch_events=batch_events,
            concurrency=tuple(concurrency) if concurrency is not None else None,
            debounce=debounce,
            idempotency=idempotency,
            priority=priority,
            rate_limit=rate_limit,
            throttle=throttle,
            timeouts=timeouts,
            singleton=singleton,
        )
        flow.validate(fn_id, cancel=cancel_rules, cron_expressions=[c.cron for c in crons])
        retry_count = self._retries(fn_id, retries)
        if on_failure is not None and not callable(on_failure):
            raise ConfigurationError(f"{fn_id}: on_failure must be a callable handler")
        function_middleware = tuple(check_middleware_list(middleware, f"{fn_id}"))

        def decorator(handler: Handler) -> Function:
            if not callable(handler):
                raise ConfigurationError(f"{fn_id}: the decorated handler must be callable")
            # inngest-py's on_failure rule, and async middleware refused for a sync function.
            check_function_kinds(
                fn_id, handler, on_failure, function_middleware, client_middleware=self.middleware
            )
            source = describe_source(handler)
            failure_fn = None
            if on_failure is not None:
                composite = f"{self.app_id}-{fn_id}"
                failure_fn = Function(
                    app_id=self.app_id,
                    fn_id=fn_id + FAILURE_SUFFIX,
                    name=f"{name or fn_id} (failure)",
                    handler=on_failure,
                    triggers=(
                        TriggerEvent(
                            event=FAILED_EVENT,
                            expression=f"event.data.function_id == {_cel_string(composite)}",
                        ),
                    ),
                    retries=0,  # inngest-py gives failure handlers no retries
                    failure_of=composite,
                    source=describe_source(on_failure),
                    middleware=function_middleware,
                    client=self,
                )
            function = Function(
                app_id=self.app_id,
                fn_id=fn_id,
                name=name or fn_id,
                handler=handler,
                triggers=triggers,
                cancel=cancel_rules,
                retries=retry_count,
                on_failure=failure_fn,
                source=source,
                crons=crons,
                flow=flow,
                middleware=function_middleware,
                client=self,
                output_type=output_type,
            )
            self.registry.register(function)
            if failure_fn is not None:
                self.registry.register(failure_fn)
            return function

        return decorator

    @staticmethod
    def _triggers(
        fn_id: str, trigger: TriggerEvent | TriggerCron | list[TriggerEvent | TriggerCron]
    ) -> tuple[tuple[TriggerEvent, ...], tuple[TriggerCron, ...]]:
        """The event triggers and the cron triggers, in the order given."""
        items = trigger if isinstance(trigger, list | tuple) else [trigger]
        if not items:
            raise ConfigurationError(f"{fn_id}: trigger must name at least one trigger")
        if len(items) > MAX_TRIGGERS:
            raise ConfigurationError(f"{fn_id}: at most {MAX_TRIGGERS} triggers, got {len(items)}")
        for item in items:
            if not isinstance(item, TriggerEvent | TriggerCron):
                raise ConfigurationError(
                    f"{fn_id}: trigger must be TriggerEvent or TriggerCron objects, "
                    f"got {type(item).__name__}"
                )
        crons = tuple(t for t in items if isinstance(t, TriggerCron))
        expressions = [c.cron for c in crons]
        if len(set(expressions)) != len(expressions):
            # Inngest's MultipleTriggers.Validate: one expression once, whatever its jitter.
            raise ConfigurationError(f"{fn_id}: a cron expression is listed twice")
        return tuple(t for t in items if isinstance(t, TriggerEvent)), crons

    @staticmethod
    def _cancel_rules(fn_id: str, cancel: list[Cancel] | None) -> tuple[Cancel, ...]:
        if cancel is None:
            return ()
        if not isinstance(cancel, list | tuple):
            raise ConfigurationError(f"{fn_id}: cancel must be a list of Cancel objects")
        for rule in cancel:
            if not isinstance(rule, Cancel):
                raise ConfigurationError(
                    f"{fn_id}: cancel entries must be Cancel objects, got {type(rule).__name__}"
                )
        # More than MAX_CANCEL_RULES is reported by system check E022, as Inngest's
        # validation rejects it at sync time.
        return tuple(cancel)

    @staticmethod
    def _retries(fn_id: str, retries: int | None) -> int | None:
        if retries is None:
            return None  # DJANGO_INNGEST_DEFAULT_RETRIES, read when a step fails
        if not isinstance(retries, int) or isinstance(retries, bool):
            raise ConfigurationError(
                f"{fn_id}: retries must be an int, got {type(retries).__name__}"
            )
        if not 0 <= retries <= MAX_RETRIES:
            raise ConfigurationError(
                f"{fn_id}: retries must be between 0 and {MAX_RETRIES}, got {retries}"
            )
        return retries

    def send_sync(
        self, events: EventValue | list[EventValue], *, skip_middleware: bool = False
    ) -> list[str]:
        """Store events and start the functions they trigger; returns internal event IDs.

        Inside ``transaction.atomic()`` the runs start only when the transaction commits, and an
        event rolled back with its transaction triggers nothing (beyond Inngest). The client's
        middleware see ``before_send_events`` and ``after_send_events`` unless
        ``skip_middleware``; async middleware need ``await send(...)``.
        """
        items = list(events) if isinstance(events, list | tuple) else [events]
        if skip_middleware or not self.middleware:
            return send_events([self._as_payload(e) for e in items])
        manager = MiddlewareManager.for_client(self, is_async=False)
        manager.before_send_events(items)
        result = SendEventsResult()
        try:
            result.ids = send_events([self._as_payload(e) for e in items])
        except Exception as exc:
            result.error = str(exc)
            raise
        finally:
            manager.after_send_events(result)
        return result.ids

    async def send(
        self, events: EventValue | list[EventValue], *, skip_middleware: bool = False
    ) -> list[str]:
        store = sync_to_async(self.send_sync)
        items = list(events) if isinstance(events, list | tuple) else [events]
        if skip_middleware or not self.middleware:
            return await store(items, skip_middleware=True)
        manager = MiddlewareManager.for_client(self, is_async=True)
        await manager.abefore_send_events(items)
        result = SendEventsResult()
        try:
            result.ids = await store(items, skip_middleware=True)
        except Exception as exc:
            result.error = str(exc)
            raise
        finally:
            await manager.aafter_send_events(result)
        return result.ids

    @staticmethod
    def _as_payload(event: EventValue | dict[str, Any]) -> dict[str, Any]:
        if isinstance(event, EventValue):
            return event.to_dict()
        if isinstance(event, dict):
            return event
        raise TypeError(f"send_sync() takes Event objects, got {type(event).__name__}")
