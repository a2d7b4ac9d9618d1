"""Functions run by the benchmarks (autodiscovered: bench/settings.py installs this app)."""

from __future__ import annotations

from datetime import timedelta

from django_inngest import Cancel, Inngest, TriggerEvent
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
