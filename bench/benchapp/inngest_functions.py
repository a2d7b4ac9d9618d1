"""Functions run by the benchmarks (autodiscovered: bench/settings.py installs this app)."""

from __future__ import annotations

from datetime import timedelta

from django_inngest import (
    Batch,
    Cancel,
    Concurrency,
    Debounce,
    Inngest,
    Throttle,
    TriggerCron,
    TriggerEvent,
)
from django_inngest import Context as AsyncContext
from django_inngest import ContextSync as Context

bench_client = Inngest(app_id="bench")

#: Function IDs, as the benchmark scripts query them.
STEPS_10 = "bench-steps-10"
STEPS_10_ASYNC = "bench-steps-10-async"
STEPS_1 = "bench-steps-1"
SLEEPER = "bench-sleeper"
TRIGGERED = "bench-triggered"
CANCELLABLE = "bench-cancellable"
CLEANUP = "bench-cleanup"
IMPORTER = "bench-importer"


def _noop(i: int) -> int:
    return i


@bench_client.create_function(fn_id="steps-10", trigger=TriggerEvent(event="bench/steps.10"))
def steps_10(ctx: Context) -> int:
    total = 0
    for i in range(10):
        total += ctx.step.run(f"step-{i}", _noop, i)
    return total


async def _async_noop(i: int) -> int:
    return i


@bench_client.create_function(
    fn_id="steps-10-async", trigger=TriggerEvent(event="bench/steps.10.async")
)
async def steps_10_async(ctx: AsyncContext) -> int:
    """The same 10 no-op steps, in an ``async def`` handler with ``async def`` step bodies."""
    total = 0
    for i in range(10):
        total += await ctx.step.run(f"step-{i}", _async_noop, i)
    return total


@bench_client.create_function(fn_id="steps-1", trigger=TriggerEvent(event="bench/steps.1"))
def steps_1(ctx: Context) -> int:
    return ctx.step.run("only", _noop, 1)  # type: ignore[no-any-return]


@bench_client.create_function(fn_id="sleeper", trigger=TriggerEvent(event="bench/sleep"))
def sleeper(ctx: Context) -> str:
    ctx.step.sleep("nap", timedelta(seconds=float(ctx.event.data.get("seconds", 2))))
    return "awake"


@bench_client.create_function(
    fn_id="triggered",
    trigger=TriggerEvent(event="bench/ingest.triggered"),
    cancel=[Cancel(event="bench/ingest.cancel", match="data.id")],
)
def triggered(ctx: Context) -> int:
    """The ingest benchmark's "each event starts one run" case (no worker runs it there)."""
    return ctx.step.run("only", _noop, 1)  # type: ignore[no-any-return]


@bench_client.create_function(
    fn_id="cancellable",
    trigger=TriggerEvent(event="bench/cancel.start"),
    cancel=[Cancel(event="bench/cancel.stop", match="data.id")],
)
def cancellable(ctx: Context) -> str:
    ctx.step.sleep("long", timedelta(hours=1))
    return "not cancelled"


@bench_client.create_function(
    fn_id="cleanup",
    trigger=TriggerEvent(
        event="inngest/function.cancelled",
        expression=f"event.data.function_id == '{CANCELLABLE}'",
    ),
)
def cleanup(ctx: Context) -> str:
    return ctx.step.run("cleanup", lambda: str(ctx.event.data["run_id"]))  # type: ignore[no-any-return]


@bench_client.create_function(
    fn_id="importer",
    trigger=TriggerEvent(event="contacts/import.requested"),
    cancel=[Cancel(event="contacts/import.cancelled", match="data.importId")],
)
def importer(ctx: Context) -> str:
    """cancel_match.py inserts this function's runs and cancel listeners directly."""
    ctx.step.sleep("wait", timedelta(hours=1))
    return "imported"


# -- flow control (bench/flow.py) ----------------------------------------------------------------
FLOW_WIDE = "bench-flow-wide"
FLOW_KEYED = "bench-flow-keyed"
FLOW_TIGHT = "bench-flow-tight"
FLOW_DEBOUNCED = "bench-flow-debounced"
FLOW_BATCHED = "bench-flow-batched"
FLOW_THROTTLED = "bench-flow-throttled"
FLOW_CRON = "bench-flow-cron"


def _ten_steps(ctx: Context) -> int:
    return sum(ctx.step.run(f"step-{i}", _noop, i) for i in range(10))


@bench_client.create_function(
    fn_id="flow-wide",
    trigger=TriggerEvent(event="bench/flow.wide"),
    concurrency=[Concurrency(limit=100)],  # above what 2 workers x 4 threads can execute
)
def flow_wide(ctx: Context) -> int:
    return _ten_steps(ctx)


@bench_client.create_function(
    fn_id="flow-keyed",
    trigger=TriggerEvent(event="bench/flow.keyed"),
    concurrency=[Concurrency(limit=1, key="event.data.key")],
)
def flow_keyed(ctx: Context) -> int:
    return _ten_steps(ctx)


def _timed_step(path: str, run_id: str, i: int) -> int:
    import os
    import time

    with open(path, "a") as marks:
        marks.write(f"{run_id} {i} start {time.time():.6f}\n")
    time.sleep(0.005)
    with open(path, "a") as marks:
        marks.write(f"{run_id} {i} end {time.time():.6f}\n")
    return os.getpid()


@bench_client.create_function(
    fn_id="flow-tight",
    trigger=TriggerEvent(event="bench/flow.tight"),
    concurrency=[Concurrency(limit=3)],
)
def flow_tight(ctx: Context) -> None:
    for i in range(5):
        ctx.step.run(f"step-{i}", _timed_step, ctx.event.data["path"], ctx.run_id, i)


@bench_client.create_function(
    fn_id="flow-debounced",
    trigger=TriggerEvent(event="bench/flow.debounce"),
    debounce=Debounce(period=timedelta(seconds=1), key="event.data.key"),
)
def flow_debounced(ctx: Context) -> None:
    return None


@bench_client.create_function(
    fn_id="flow-batched",
    trigger=TriggerEvent(event="bench/flow.batch"),
    batch_events=Batch(max_size=100, timeout=timedelta(hours=1), key="event.data.key"),
)
def flow_batched(ctx: Context) -> int:
    return len(ctx.events)


@bench_client.create_function(
    fn_id="flow-throttled",
    trigger=TriggerEvent(event="bench/flow.throttle"),
    throttle=Throttle(limit=5, period=timedelta(seconds=1), burst=0),
)
def flow_throttled(ctx: Context) -> None:
    return None


@bench_client.create_function(fn_id="flow-cron", trigger=TriggerCron(cron="0 0 1 1 *"))
def flow_cron(ctx: Context) -> None:
    return None
