"""Definition-time rules on sync and async handlers, as inngest-py 0.5.19 enforces them.

- A function's ``on_failure`` handler must be async exactly when the function's handler is
  (inngest-py ``function.py`` raises ``errors.Error`` with the same messages).
- A sync function cannot use async middleware (``Middleware``, or a hook defined with
  ``async def``). inngest-py accepts the definition and then fails every run with
  ``AsyncUnsupportedError("encountered async middleware in non-async context")``; we refuse it
  when the function is defined, naming the middleware. Factories that are not classes cannot be
  inspected before they are called; ``MiddlewareManager`` checks what they make at run time.
- An async function may use both kinds of middleware.

``create_function`` calls ``check_function_kinds``; ``Inngest.add_middleware`` checks the client's
sync functions; system check ``django_inngest.E030`` checks every registered function again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from django_inngest.exceptions import ConfigurationError
from django_inngest.middleware import Middleware, MiddlewareSync
from django_inngest.middleware.manager import is_async_middleware, middleware_name


def is_async_handler(handler: Callable[..., Any]) -> bool:
    """inngest-py's test: ``inspect.iscoroutinefunction`` (``execution_lib/utils.py``)."""
    return inspect.iscoroutinefunction(handler)


def check_middleware_list(value: object, where: str) -> list[Any]:
    """``middleware=`` must be a list (or tuple) of middleware classes or factories."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ConfigurationError(
            f"{where}: middleware must be a list of middleware classes, got {type(value).__name__}"
        )
    for entry in value:
        if not callable(entry):
            raise ConfigurationError(
                f"{where}: middleware entries must be Middleware or MiddlewareSync classes "
                f"(or factories), got {entry!r}"
            )
        if inspect.isclass(entry) and not _is_middleware_class(entry):
            raise ConfigurationError(
                f"{where}: middleware {middleware_name(entry)} must subclass "
                "django_inngest.Middleware or django_inngest.MiddlewareSync"
            )
    return list(value)


def _is_middleware_class(cls: type) -> bool:
    return issubclass(cls, Middleware | MiddlewareSync)


def check_function_kinds(
    fn_id: str,
    handler: Callable[..., Any],
    on_failure: Callable[..., Any] | None = None,
    middleware: Sequence[Any] = (),
    client_middleware: Sequence[Any] = (),
) -> None:
    """Raise ``ConfigurationError`` if the handlers and middleware of a function do not fit."""
    handler_async = is_async_handler(handler)
    if on_failure is not None:
        failure_async = is_async_handler(on_failure)
        if handler_async and not failure_async:
            raise ConfigurationError(
                f"an async function cannot have a non-async on_failure handler (function {fn_id})"
            )
        if not handler_async and failure_async:
            raise ConfigurationError(
                f"a non-async function cannot have an async on_failure handler (function {fn_id})"
            )
    if handler_async:
        return
    for source, entries in (("client", client_middleware), ("function", middleware)):
        for entry in entries:
            if inspect.isclass(entry) and is_async_middleware(entry):
                raise ConfigurationError(
                    f"{source} middleware {middleware_name(entry)} is async (Middleware or a "
                    f"coroutine hook) but function {fn_id} is not; use MiddlewareSync or make "
                    "the function async"
                )
