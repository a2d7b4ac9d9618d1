"""Running an ``async def`` handler in a worker thread, with the database work on that thread.

The engine's step executors are sync, and each must run on the worker thread that holds the
run's database connection. Django refuses ORM calls while an event loop runs in the calling
thread ("You cannot call this from an async context"), and handing each call to another thread
(``asgiref``'s ``sync_to_async``) costs two thread switches: about 90 µs a call here, plus
about 400 µs a turn for ``async_to_sync``'s loop thread (measured).

So the worker thread runs its own event loop in short stretches. The handler runs as a task on
it; when the handler needs sync work (``Bridge.call``), its task parks on a future and the loop
stops; the worker thread, no longer inside a running loop, does the work (ORM allowed) and
resolves the future; the loop resumes. About 10 µs a call, and every call runs on the run's
own thread and connection. Nothing else runs on the loop meanwhile, as in inngest-py, where a
sync step body blocks the loop too.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

from django.db import connections

from django_inngest.conf import settings
from django_inngest.engine.control import check_output

T = TypeVar("T")
_Call = tuple[Callable[[], Any], asyncio.Future[Any]]


class Bridge:
    """Sync calls from a coroutine on the worker thread's loop, run by the worker thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: deque[_Call] = deque()
        self._wake: asyncio.Future[None] | None = None

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the worker thread, outside the loop, in the caller's
        context (so its ContextVars are seen); its result or exception (``Suspend`` included)
        comes back here."""
        future: asyncio.Future[T] = self.loop.create_future()
        context = contextvars.copy_context()
        self._calls.append((partial(context.run, fn, *args, **kwargs), future))
        self.poke()
        return await future

    def poke(self) -> None:
        """Stop the loop's current stretch: there is sync work, or the handler finished."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def run_until_done(self, task: asyncio.Task[Any]) -> None:
        """Alternate loop stretches and sync calls until ``task`` is done."""
        task.add_done_callback(lambda _: self.poke())
        while not task.done():
            if not self._calls:
                self._wake = self.loop.create_future()
                self.loop.run_until_complete(self._wake)
            self._do_calls()

    def _do_calls(self) -> None:
        while self._calls:
            fn, future = self._calls.popleft()
            try:
                result = fn()
            except BaseException as exc:  # Suspend and Abandon travel back to the handler
                if not future.cancelled():
                    future.set_exception(exc)
            else:
                if not future.cancelled():
                    future.set_result(result)


def drive(main: Callable[[Bridge], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(bridge)`` to its end on a new event loop in this thread; returns its result
    or raises its exception. Tasks it left behind are cancelled, as ``asyncio.run`` does."""
    loop = asyncio.new_event_loop()
    bridge = Bridge(loop)
    try:
        task = loop.create_task(main(bridge))
        bridge.run_until_done(task)
        return task.result()
    finally:
        _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    try:
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def off_loop(fn: Callable[[], T]) -> T:
    """Call sync database code from wherever: directly, unless an event loop runs in this
    thread (an async step body), where it runs on a short-lived thread with its own
    connection, closed after. Used by ``ctx.is_cancelled()`` in async handlers."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))
        finally:
            connections.close_all()

    thread = threading.Thread(target=work, name="inngest-off-loop")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


#: Runs a sync callable somewhere and awaits its result: ``Bridge.call``, or ``on_threads``.
SyncRunner = Callable[..., Awaitable[Any]]


async def call_body(
    handler: Callable[..., Any], args: tuple[Any, ...], on_thread: SyncRunner
) -> tuple[bool, Any]:
    """Run a ``step.run`` body of an async run: (True, checked output) or (False, the error).

    An ``async def`` body is awaited on the loop. Any other callable runs through
    ``on_thread`` (so the ORM works in it), and what it returns is awaited if awaitable
    (``lambda: fetch(url)``), as inngest-py's ``maybe_await`` does.
    """
    try:
        if inspect.iscoroutinefunction(handler):
            output = await handler(*args)
        else:
            output = await on_thread(handler, *args)
            if inspect.isawaitable(output):
                output = await output
        return True, check_output(output, settings.MAX_STEP_OUTPUT_BYTES)
    except Exception as exc:
        return False, exc


def on_threads(pool: Executor) -> SyncRunner:
    """A ``SyncRunner`` on ``pool``'s threads, each call with its own database connection
    (closed after) and the caller's ContextVars: the sync bodies of a parallel group."""

    async def run(fn: Callable[..., T], *args: Any) -> T:
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, partial(_closing, context, fn, args))

    return run


def _closing(context: contextvars.Context, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    try:
        return context.run(fn, *args)
    finally:
        connections.close_all()
