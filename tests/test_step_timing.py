"""``StepTimingMiddleware`` driven by the manager through segments, with a fake clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from django_inngest import Inngest, StepMemos
from django_inngest.contrib.step_timing import StepTimingMiddleware
from django_inngest.middleware import Opcode, StepMemo
from django_inngest.middleware.manager import MiddlewareManager, function_result, step_result

CTX = SimpleNamespace(run_id="01RUN")
FUNCTION = SimpleNamespace(id="shop-checkout", middleware=[StepTimingMiddleware])


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    ticks: list[float] = []
    monkeypatch.setattr(StepTimingMiddleware, "clock", staticmethod(lambda: ticks.pop(0)))
    yield ticks


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="django_inngest.contrib.step_timing")
    return caplog


def segment(memos: dict[str, object]) -> MiddlewareManager:
    manager = MiddlewareManager.for_function(Inngest(app_id="shop"), FUNCTION, is_async=False)  # type: ignore[arg-type]
    steps = StepMemos({k: StepMemo(data=v) for k, v in memos.items()})
    manager.transform_input(CTX, FUNCTION, steps)  # type: ignore[arg-type]
    return manager


def test_an_executed_step_is_logged_once_with_its_duration(
    clock: list[float], log: pytest.LogCaptureFixture
) -> None:
    clock[:] = [10.0, 10.1824]
    manager = segment({})
    manager.before_execution()
    manager.after_execution()
    manager.transform_output(step_result("charge-card", Opcode.STEP_RUN, output={"ok": 1}))
    manager.before_response()

    (record,) = log.records
    assert record.getMessage() == (
        "step 'charge-card' took 182.4 ms (ok) run_id=01RUN function_id=shop-checkout"
    )
    assert (record.step_id, record.run_id, record.function_id) == (  # type: ignore[attr-defined]
        "charge-card",
        "01RUN",
        "shop-checkout",
    )
    assert record.duration_ms == 182.4 and record.outcome == "ok"  # type: ignore[attr-defined]


def test_a_segment_that_only_replays_logs_nothing(
    clock: list[float], log: pytest.LogCaptureFixture
) -> None:
    # The handler paused again before replay ended: before_execution never ran.
    manager = segment({"charge-card": {"ok": 1}, "wait": None})
    manager.after_execution()
    manager.transform_output(step_result("wait", Opcode.WAIT_FOR_EVENT, output=None))
    assert log.records == []


@pytest.mark.parametrize("op", [Opcode.SLEEP, Opcode.WAIT_FOR_EVENT, Opcode.INVOKE])
def test_pauses_are_not_steps(
    op: Opcode, clock: list[float], log: pytest.LogCaptureFixture
) -> None:
    clock[:] = [1.0, 2.0]
    manager = segment({})
    manager.before_execution()
    manager.after_execution()
    manager.transform_output(step_result("nap", op, output=None))
    assert log.records == []


def test_the_function_result_is_not_a_step(
    clock: list[float], log: pytest.LogCaptureFixture
) -> None:
    clock[:] = [1.0, 2.0]
    manager = segment({"charge-card": 1})
    manager.before_execution()
    manager.after_execution()
    manager.transform_output(function_result(output="done"))
    assert log.records == []


@pytest.mark.parametrize(
    ("op", "error", "outcome"),
    [
        (Opcode.STEP_ERROR, ValueError("x"), "error"),
        (Opcode.STEP_FAILED, ValueError("x"), "failed"),
        (Opcode.STEP_RUN, ValueError("set by a middleware"), "failed"),
    ],
)
def test_failed_attempts_are_logged_with_their_outcome(
    op: Opcode,
    error: Exception,
    outcome: str,
    clock: list[float],
    log: pytest.LogCaptureFixture,
) -> None:
    clock[:] = [1.0, 1.5]
    manager = segment({})
    manager.before_execution()
    manager.after_execution()
    manager.transform_output(step_result("charge-card", op, error=error))
    (record,) = log.records
    assert record.outcome == outcome and record.duration_ms == 500.0  # type: ignore[attr-defined]


def test_it_works_in_an_async_run(clock: list[float], log: pytest.LogCaptureFixture) -> None:
    clock[:] = [3.0, 3.25]
    manager = MiddlewareManager.for_function(Inngest(app_id="shop"), FUNCTION, is_async=True)  # type: ignore[arg-type]

    async def drive() -> None:
        await manager.atransform_input(CTX, FUNCTION, StepMemos({}))  # type: ignore[arg-type]
        await manager.abefore_execution()
        await manager.aafter_execution()
        await manager.atransform_output(step_result("s", Opcode.STEP_RUN, output=1))

    asyncio.run(drive())
    (record,) = log.records
    assert record.duration_ms == 250.0  # type: ignore[attr-defined]


def test_the_real_clock_measures_real_time(log: pytest.LogCaptureFixture) -> None:
    manager = segment({})
    manager.before_execution()
    sum(range(10_000))
    manager.after_execution()
    manager.transform_output(step_result("s", Opcode.STEP_RUN, output=1))
    (record,) = log.records
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
