"""Definition-time rules for sync and async handlers, on_failure handlers and middleware."""

from __future__ import annotations

from typing import Any

import pytest

from django_inngest import Middleware, MiddlewareSync
from django_inngest.exceptions import ConfigurationError
from django_inngest.handler_kinds import (
    check_function_kinds,
    check_middleware_list,
    is_async_handler,
)


def sync_handler(ctx: Any) -> None:
    return None


async def async_handler(ctx: Any) -> None:
    return None


class AsyncMw(Middleware):
    pass


class SyncMw(MiddlewareSync):
    pass


class SyncMwWithAsyncHook(MiddlewareSync):
    async def after_execution(self) -> None:  # type: ignore[override]
        return None


def inngest_py_error(handler: Any, on_failure: Any, fn_id: str) -> str:
    import inngest

    client = inngest.Inngest(app_id="kinds", is_production=False)
    with pytest.raises(Exception) as caught:
        client.create_function(
            fn_id=fn_id, trigger=inngest.TriggerEvent(event="e"), on_failure=on_failure
        )(handler)
    return str(caught.value)


@pytest.mark.parametrize(
    ("handler", "on_failure"), [(async_handler, sync_handler), (sync_handler, async_handler)]
)
def test_on_failure_must_match_the_handler_with_inngest_pys_message(
    handler: Any, on_failure: Any
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_function_kinds("send-email", handler, on_failure)
    assert str(caught.value) == inngest_py_error(handler, on_failure, "send-email")


@pytest.mark.parametrize(
    ("handler", "on_failure"), [(async_handler, async_handler), (sync_handler, sync_handler)]
)
def test_matching_on_failure_kinds_are_accepted(handler: Any, on_failure: Any) -> None:
    check_function_kinds("f", handler, on_failure)


@pytest.mark.parametrize("middleware", [AsyncMw, SyncMwWithAsyncHook])
def test_a_sync_function_refuses_async_function_middleware(middleware: type) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_function_kinds("f", sync_handler, middleware=[SyncMw, middleware])
    assert f"function middleware tests.test_handler_kinds.{middleware.__name__} is async" in str(
        caught.value
    )


def test_a_sync_function_refuses_async_client_middleware() -> None:
    with pytest.raises(ConfigurationError, match=r"client middleware .*AsyncMw is async"):
        check_function_kinds("f", sync_handler, client_middleware=[AsyncMw])


def test_an_async_function_may_use_both_kinds() -> None:
    check_function_kinds(
        "f", async_handler, middleware=[AsyncMw, SyncMw], client_middleware=[SyncMwWithAsyncHook]
    )


def test_factories_are_left_to_the_run_time_check() -> None:
    # A factory's product is unknown until it is called (MiddlewareManager checks it then).
    check_function_kinds("f", sync_handler, middleware=[lambda client, raw: AsyncMw(client, raw)])


def test_is_async_handler_is_inngest_pys_test() -> None:
    assert is_async_handler(async_handler) and not is_async_handler(sync_handler)
    assert not is_async_handler(lambda ctx: None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (SyncMw, "must be a list of middleware classes, got type"),
        ([SyncMw, 3], "entries must be Middleware or MiddlewareSync classes"),
        ([dict], "middleware builtins.dict must subclass"),
    ],
)
def test_middleware_lists_are_validated(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_middleware_list(value, "create_function(fn_id='f')")


def test_a_valid_middleware_list_is_returned_as_a_list() -> None:
    factory = lambda client, raw: SyncMw(client, raw)  # noqa: E731
    assert check_middleware_list((SyncMw, AsyncMw, factory), "x") == [SyncMw, AsyncMw, factory]
    assert check_middleware_list(None, "x") == []
