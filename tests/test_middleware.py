"""``MiddlewareManager``: hook order across middleware, sync/async rules and transformations.

No engine here: hooks are driven directly, with fake contexts, as the engine will drive them
(the call points are in ``django_inngest/middleware/manager.py``). Where inngest-py 0.5.19 is the
reference, the same calls are made on its own ``MiddlewareManager`` and the logs compared.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from django_inngest import Inngest, Middleware, MiddlewareSync, StepMemos, TransformOutputResult
from django_inngest.exceptions import ConfigurationError
from django_inngest.middleware import NO_OUTPUT, Opcode, StepMemo
from django_inngest.middleware.manager import MiddlewareManager, function_result, step_result
from django_inngest.sdk_types import SendEventsResult

HOOK_CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("transform_input", (None, None, None)),
    ("before_execution", ()),
    ("before_send_events", ([],)),
    ("after_send_events", (None,)),
    ("after_execution", ()),
    ("transform_output", (None,)),
    ("before_response", ()),
]


def recording(base: type, tag: str, log: list[str]) -> type:
    """A middleware class (sync or async, after ``base``) that logs ``tag.hook`` per call."""
    namespace: dict[str, Any] = {}
    for hook, _ in HOOK_CALLS:
        if base in (Middleware,) or base.__name__ == "Middleware":

            async def async_hook(self: Any, *args: Any, _hook: str = hook) -> None:
                log.append(f"{tag}.{_hook}")

            namespace[hook] = async_hook
        else:

            def sync_hook(self: Any, *args: Any, _hook: str = hook) -> None:
                log.append(f"{tag}.{_hook}")

            namespace[hook] = sync_hook
    return type(tag, (base,), namespace)


@pytest.fixture
def client() -> Inngest:
    return Inngest(app_id="mw-app")


def drive_sync(manager: MiddlewareManager) -> None:
    manager.transform_input(SimpleNamespace(run_id="r"), SimpleNamespace(id="f"), StepMemos({}))
    manager.before_execution()
    manager.before_send_events([])
    manager.after_send_events(SendEventsResult())
    manager.after_execution()
    manager.transform_output(function_result(output=1))
    manager.before_response()


def test_hook_order_matches_inngest_py(client: Inngest) -> None:
    import inngest
    from inngest._internal import execution_lib, middleware_lib, net, step_lib

    theirs_log: list[str] = []
    ours_log: list[str] = []
    theirs = middleware_lib.MiddlewareManager(
        inngest.Inngest(app_id="mw-app", is_production=False), None, net.ServerTimings()
    )
    for tag in ("client1", "client2", "fn1"):
        theirs.add(recording(inngest.MiddlewareSync, tag, theirs_log))
    theirs.transform_input_sync(None, None, step_lib.StepMemos({}))  # type: ignore[arg-type]
    theirs.before_execution_sync()
    theirs.before_send_events_sync([])
    theirs.after_send_events_sync(inngest.SendEventsResult())
    theirs.after_execution_sync()
    theirs.transform_output_sync(execution_lib.CallResult(output=1))
    theirs.before_response_sync()

    ours = MiddlewareManager.build(
        client,
        [recording(MiddlewareSync, tag, ours_log) for tag in ("client1", "client2", "fn1")],
        is_async=False,
    )
    drive_sync(ours)

    assert ours_log == theirs_log
    # Spelled out, so a change on either side is readable in the failure:
    assert ours_log == [
        "client1.transform_input",
        "client2.transform_input",
        "fn1.transform_input",
        "client1.before_execution",
        "client2.before_execution",
        "fn1.before_execution",
        "client1.before_send_events",
        "client2.before_send_events",
        "fn1.before_send_events",
        "fn1.after_send_events",
        "client2.after_send_events",
        "client1.after_send_events",
        "fn1.after_execution",
        "client2.after_execution",
        "client1.after_execution",
        "fn1.transform_output",
        "client2.transform_output",
        "client1.transform_output",
        "client1.before_response",
        "client2.before_response",
        "fn1.before_response",
    ]


def test_for_function_puts_client_middleware_before_function_middleware(client: Inngest) -> None:
    log: list[str] = []
    client.add_middleware(recording(MiddlewareSync, "client", log))
    function = SimpleNamespace(id="mw-app-f", middleware=[recording(MiddlewareSync, "fn", log)])
    manager = MiddlewareManager.for_function(client, function, is_async=False)  # type: ignore[arg-type]
    manager.before_execution()
    manager.after_execution()
    assert log == [
        "client.before_execution",
        "fn.before_execution",
        "fn.after_execution",
        "client.after_execution",
    ]


def test_before_execution_runs_once_per_segment(client: Inngest) -> None:
    log: list[str] = []
    manager = MiddlewareManager.build(client, [recording(MiddlewareSync, "m", log)], is_async=False)
    assert not manager.executing
    manager.before_execution()
    manager.before_execution()  # a step reached after the segment already started executing
    assert log == ["m.before_execution"]
    assert manager.executing
    # A new segment (a new manager) runs it again.
    MiddlewareManager.build(
        client, [recording(MiddlewareSync, "m", log)], is_async=False
    ).before_execution()
    assert log == ["m.before_execution", "m.before_execution"]


def test_each_build_makes_fresh_instances_with_client_and_no_raw_request(client: Inngest) -> None:
    made: list[MiddlewareSync] = []

    class Remember(MiddlewareSync):
        def __init__(self, client: Inngest, raw_request: object) -> None:
            super().__init__(client, raw_request)
            made.append(self)

    first = MiddlewareManager.build(client, [Remember], is_async=False)
    second = MiddlewareManager.build(client, [Remember], is_async=False)
    assert first.middleware[0] is not second.middleware[0]
    assert [(m.client, m.raw_request) for m in made] == [(client, None), (client, None)]


def test_factories_that_are_not_classes_are_called_like_classes(client: Inngest) -> None:
    class WithOption(MiddlewareSync):
        def __init__(self, client: Inngest, raw_request: object, label: str) -> None:
            super().__init__(client, raw_request)
            self.label = label

    def factory(client: Inngest, raw_request: object) -> WithOption:
        return WithOption(client, raw_request, "configured")

    manager = MiddlewareManager.build(client, [factory], is_async=False)
    assert isinstance(manager.middleware[0], WithOption)
    assert manager.middleware[0].label == "configured"


def test_a_factory_that_makes_something_else_is_refused(client: Inngest) -> None:
    with pytest.raises(ConfigurationError, match="must make Middleware or MiddlewareSync"):
        MiddlewareManager.build(client, [lambda c, r: object()], is_async=False)


# -- transform_output -------------------------------------------------------------------------


def test_transform_output_chains_in_reverse_and_keeps_output_and_error(client: Inngest) -> None:
    class Suffix(MiddlewareSync):
        suffix = ""

        def transform_output(self, result: TransformOutputResult) -> None:
            result.output = f"{result.output}-{self.suffix}"
            assert result.step is not None
            result.step.id = "tampered"  # discarded, as in inngest-py

    first = type("First", (Suffix,), {"suffix": "client"})
    second = type("Second", (Suffix,), {"suffix": "fn"})
    manager = MiddlewareManager.build(client, [first, second], is_async=False)
    original = step_result("charge", Opcode.STEP_RUN, output="x")

    kept = manager.transform_output(original)

    assert kept.output == "x-fn-client"  # the function's middleware first, then the client's
    assert kept.error is None
    assert kept.step is not None and kept.step.id == "charge" and kept.step.op is Opcode.STEP_RUN
    assert original.output == "x"  # the engine's own object is left alone


def test_transform_output_can_replace_an_error_and_sees_no_output(client: Inngest) -> None:
    seen: list[tuple[object, bool]] = []

    class Recover(MiddlewareSync):
        def transform_output(self, result: TransformOutputResult) -> None:
            seen.append((result.error, result.has_output()))
            result.error = None
            result.output = {"recovered": True}

    boom = ValueError("boom")
    kept = MiddlewareManager.build(client, [Recover], is_async=False).transform_output(
        function_result(error=boom)
    )
    assert seen == [(boom, False)]
    assert kept.error is None and kept.output == {"recovered": True} and kept.step is None
    assert function_result().output is NO_OUTPUT


def test_transform_input_can_replace_memoized_data(client: Inngest) -> None:
    class Hydrate(MiddlewareSync):
        def transform_input(self, ctx: Any, function: Any, steps: StepMemos) -> None:
            for memo in steps.values():
                if isinstance(memo.data, dict) and "s3_key" in memo.data:
                    memo.data = f"loaded {memo.data['s3_key']}"

    steps = StepMemos({"a": StepMemo(data={"s3_key": "k1"}), "b": StepMemo(data=2)})
    manager = MiddlewareManager.build(client, [Hydrate], is_async=False)
    manager.transform_input(SimpleNamespace(run_id="r"), SimpleNamespace(id="f"), steps)

    popped = steps.pop("a")
    assert popped is not None and popped.data == "loaded k1"
    assert steps.size == 1 and "b" in steps and steps.pop("missing") is None


# -- failures and sync/async rules --------------------------------------------------------------


def test_a_raising_hook_stops_the_rest_and_propagates(client: Inngest) -> None:
    log: list[str] = []

    class Fails(MiddlewareSync):
        def transform_input(self, ctx: Any, function: Any, steps: StepMemos) -> None:
            raise RuntimeError("bad input")

    manager = MiddlewareManager.build(
        client,
        [recording(MiddlewareSync, "before", log), Fails, recording(MiddlewareSync, "after", log)],
        is_async=False,
    )
    with pytest.raises(RuntimeError, match="bad input"):
        manager.transform_input(None, None, StepMemos({}))  # type: ignore[arg-type]
    assert log == ["before.transform_input"]


class AsyncRecorder(Middleware):
    async def before_execution(self) -> None:
        return None


class SyncWithOneAsyncHook(MiddlewareSync):
    async def before_response(self) -> None:  # type: ignore[override]
        return None


@pytest.mark.parametrize("async_class", [AsyncRecorder, SyncWithOneAsyncHook])
def test_a_sync_run_refuses_async_middleware_naming_it(client: Inngest, async_class: type) -> None:
    with pytest.raises(ConfigurationError) as caught:
        MiddlewareManager.build(client, [async_class], is_async=False, function_id="mw-app-f")
    message = str(caught.value)
    assert f"tests.test_middleware.{async_class.__name__}" in message
    assert "'mw-app-f' is sync" in message


def test_inngest_py_also_refuses_async_middleware_in_a_sync_run() -> None:
    # The reference behaviour our definition-time and build-time refusals stand for.
    import inngest
    from inngest._internal import middleware_lib, net, step_lib

    manager = middleware_lib.MiddlewareManager(
        inngest.Inngest(app_id="x", is_production=False), None, net.ServerTimings()
    )
    manager.add(recording(inngest.Middleware, "a", []))
    err = manager.transform_input_sync(None, None, step_lib.StepMemos({}))  # type: ignore[arg-type]
    assert type(err).__name__ == "AsyncUnsupportedError"
    assert str(err) == "encountered async middleware in non-async context"


def test_an_async_run_awaits_async_hooks_and_calls_sync_ones_in_order(client: Inngest) -> None:
    log: list[str] = []
    manager = MiddlewareManager.build(
        client,
        [recording(MiddlewareSync, "sync", log), recording(Middleware, "async", log)],
        is_async=True,
    )

    async def drive() -> TransformOutputResult:
        await manager.atransform_input(None, None, StepMemos({}))  # type: ignore[arg-type]
        await manager.abefore_execution()
        await manager.abefore_execution()
        await manager.abefore_send_events([])
        await manager.aafter_send_events(SendEventsResult())
        await manager.aafter_execution()
        kept = await manager.atransform_output(step_result("s", Opcode.STEP_RUN, output=1))
        await manager.abefore_response()
        return kept

    kept = asyncio.run(drive())
    assert kept.output == 1
    assert log == [
        "sync.transform_input",
        "async.transform_input",
        "sync.before_execution",
        "async.before_execution",
        "sync.before_send_events",
        "async.before_send_events",
        "async.after_send_events",
        "sync.after_send_events",
        "async.after_execution",
        "sync.after_execution",
        "async.transform_output",
        "sync.transform_output",
        "sync.before_response",
        "async.before_response",
    ]


def test_an_async_transform_output_changes_are_kept(client: Inngest) -> None:
    class Double(Middleware):
        async def transform_output(self, result: TransformOutputResult) -> None:
            await asyncio.sleep(0)
            result.output = result.output * 2  # type: ignore[operator]

    manager = MiddlewareManager.build(client, [Double], is_async=True)
    kept = asyncio.run(manager.atransform_output(function_result(output=21)))
    assert kept.output == 42


def test_sync_hooks_cannot_be_called_on_an_async_manager(client: Inngest) -> None:
    manager = MiddlewareManager.build(client, [MiddlewareSync], is_async=True)
    with pytest.raises(ConfigurationError, match="must await aafter_execution"):
        manager.after_execution()
