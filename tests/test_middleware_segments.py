"""The segment protocol of ``middleware.manager``, driven by a minimal fake engine.

The fake engine follows the documented call points exactly, for the handler of inngest-py's
``function_middleware`` test, and must reproduce that test's hook sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from django_inngest import Inngest, MiddlewareSync, StepMemos, TransformOutputResult
from django_inngest.middleware import Opcode, StepMemo
from django_inngest.middleware.manager import MiddlewareManager, function_result, step_result
from django_inngest.sdk_types import SendEventsResult
from tests.test_middleware import recording


@dataclass
class FakeRun:
    """A run's memos, as the engine keeps them: step ID -> stored output."""

    memos: dict[str, object]


def run_segmented(client: Inngest, factories: list[Any], run: FakeRun, log: list[str]) -> object:
    """A minimal engine turn following the call points in ``middleware.manager``'s docstring.

    The handler is ``step_1 = step.run("step_1"); send_event("send"); return "done"``, the
    sequence of inngest-py's ``function_middleware`` test. Everything runs inline in one turn.
    """
    function = SimpleNamespace(id="mw-app-f", middleware=factories)
    ctx = SimpleNamespace(run_id="run-1")

    def open_segment(memos: dict[str, object]) -> tuple[MiddlewareManager, StepMemos]:
        manager = MiddlewareManager.for_function(client, function, is_async=False)  # type: ignore[arg-type]
        steps = StepMemos({k: StepMemo(data=v) for k, v in memos.items()})
        manager.transform_input(ctx, function, steps)  # type: ignore[arg-type]
        if steps.size == 0:
            manager.before_execution()
        return manager, steps

    def replay(manager: MiddlewareManager, steps: StepMemos, step_id: str) -> object:
        memo = steps.pop(step_id)
        if steps.size == 0:
            manager.before_execution()
        assert memo is not None
        return memo.data

    def run_step(
        manager: MiddlewareManager, step_id: str, body: Any
    ) -> tuple[MiddlewareManager, StepMemos]:
        output = body()
        manager.after_execution()
        kept = manager.transform_output(step_result(step_id, Opcode.STEP_RUN, output=output))
        run.memos[step_id] = kept.output  # the commit
        manager.before_response()
        return open_segment({step_id: kept.output})  # the handler continues inline

    manager, steps = open_segment(dict(run.memos))
    log.append("fn: before step_1")
    if "step_1" not in run.memos:
        manager, steps = run_step(manager, "step_1", lambda: "original output")
    log.append(f"fn: step_1 returned {replay(manager, steps, 'step_1')!r}")

    def send() -> list[str]:
        manager.before_send_events([])
        manager.after_send_events(SendEventsResult(ids=["e1"]))
        return ["e1"]

    if "send" not in run.memos:
        manager, steps = run_step(manager, "send", send)
    replay(manager, steps, "send")
    log.append("fn: after send")
    manager.after_execution()
    kept = manager.transform_output(function_result(output="done"))
    manager.before_response()
    return kept.output


def test_segments_reproduce_inngest_pys_hook_sequence() -> None:
    client = Inngest(app_id="mw-app")
    log: list[str] = []

    class Transform(MiddlewareSync):
        def transform_output(self, result: TransformOutputResult) -> None:
            log.append("hook:transform_output")
            if result.output == "original output":
                result.output = "transformed output"

    hooks = recording(MiddlewareSync, "hook", log)
    # One middleware logging every hook; the transforming one runs its transform_output first.
    run = FakeRun(memos={})
    output = run_segmented(client, [hooks, Transform], run, log)

    assert output == "done"
    assert run.memos == {"step_1": "transformed output", "send": ["e1"]}
    # inngest-py 0.5.19's function_middleware test, minus the replayed "fn:" lines (no replay
    # happens when the engine continues inline) and with transform_output logged twice (two
    # middleware here).
    assert [line for line in log if line.startswith("hook")] == [
        "hook.transform_input",
        "hook.before_execution",
        "hook.after_execution",
        "hook:transform_output",
        "hook.transform_output",
        "hook.before_response",
        "hook.transform_input",
        "hook.before_execution",
        "hook.before_send_events",
        "hook.after_send_events",
        "hook.after_execution",
        "hook:transform_output",
        "hook.transform_output",
        "hook.before_response",
        "hook.transform_input",
        "hook.before_execution",
        "hook.after_execution",
        "hook:transform_output",
        "hook.transform_output",
        "hook.before_response",
    ]
    # The handler saw the transformed memo, as it would after a replay in inngest-py.
    assert "fn: step_1 returned 'transformed output'" in log


def test_a_later_turn_replays_memos_before_executing() -> None:
    client = Inngest(app_id="mw-app")
    log: list[str] = []
    run = FakeRun(memos={"step_1": "transformed output"})
    run_segmented(client, [recording(MiddlewareSync, "hook", log)], run, log)
    # before_execution waits until step_1's memo is replayed, as inngest-py's report_step does.
    assert log[:4] == [
        "hook.transform_input",
        "fn: before step_1",
        "hook.before_execution",
        "fn: step_1 returned 'transformed output'",
    ]
