"""Found by real autodiscovery (tests/settings.py installs this app). The integration tests'
``qcluster`` workers run these; each step appends ``<run_id> <step_id> <pid>`` to the file named
by ``INNGEST_TEST_MARKERS`` so the tests can count executions across processes."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

from django_inngest import (
    Cancel,
    Concurrency,
    Context,
    Debounce,
    Inngest,
    NonRetriableError,
    Throttle,
    TriggerCron,
    TriggerEvent,
)

inngest_client = Inngest(app_id="testapp")


def mark(run_id: str, step_id: str) -> None:
    path = os.environ.get("INNGEST_TEST_MARKERS")
    if path:
        with open(path, "a") as markers:
            markers.write(f"{run_id} {step_id} {os.getpid()}\n")


@inngest_client.create_function(fn_id="hello", trigger=TriggerEvent(event="testapp/hello"))
def hello(ctx: Context) -> str:
    return ctx.step.run("greet", lambda: f"hello {ctx.event.data.get('name', 'world')}")


@inngest_client.create_function(fn_id="five-steps", trigger=TriggerEvent(event="testapp/five"))
def five_steps(ctx: Context) -> list[int]:
    """Five steps; step 3 takes `slow` seconds, long enough to kill its worker mid-step."""
    slow = float(ctx.event.data.get("slow", 0))
    results = []
    for i in range(1, 6):

        def work(i: int = i) -> int:
            mark(ctx.run_id, f"step-{i}")
            if i == 3 and slow:
                time.sleep(slow)
            return i

        results.append(ctx.step.run(f"step-{i}", work))
    return results


@inngest_client.create_function(fn_id="sleeper", trigger=TriggerEvent(event="testapp/sleep"))
def sleeper(ctx: Context) -> str:
    ctx.step.sleep("nap", timedelta(seconds=float(ctx.event.data.get("seconds", 2))))
    return "awake"


@inngest_client.create_function(fn_id="waiter", trigger=TriggerEvent(event="testapp/wait"))
def waiter(ctx: Context) -> Any:
    got = ctx.step.wait_for_event(
        "approval",
        event="testapp/approved",
        match="data.id",
        timeout=timedelta(seconds=float(ctx.event.data.get("timeout", 30))),
    )
    return None if got is None else got.data


def _fail_twice(run_id: str) -> str:
    path = os.environ.get("INNGEST_TEST_MARKERS", "")
    mark(run_id, "flaky")
    with open(path) as markers:
        count = sum(1 for line in markers if line.split()[:2] == [run_id, "flaky"])
    if count < 3:
        raise RuntimeError(f"attempt {count} failed")
    return f"ok after {count}"


@inngest_client.create_function(
    fn_id="flaky", trigger=TriggerEvent(event="testapp/flaky"), retries=4
)
def flaky(ctx: Context) -> str:
    return ctx.step.run("flaky", _fail_twice, ctx.run_id)  # type: ignore[no-any-return]


def _report_failure(ctx: Context) -> dict[str, Any]:
    mark(ctx.event.data["run_id"], "on_failure")
    return {"failed_run": ctx.event.data["run_id"], "error": ctx.event.data["error"]["message"]}


@inngest_client.create_function(
    fn_id="doomed",
    trigger=TriggerEvent(event="testapp/doomed"),
    retries=3,
    on_failure=_report_failure,
)
def doomed(ctx: Context) -> None:
    def explode() -> None:
        raise NonRetriableError("cannot continue")

    ctx.step.run("explode", explode)


@inngest_client.create_function(
    fn_id="racer",
    trigger=TriggerEvent(event="testapp/race"),
    cancel=[Cancel(event="testapp/race.cancel", match="data.n")],
)
def racer(ctx: Context) -> int:
    def work() -> int:
        # Long enough that cancels land on queued runs, mid-step runs and finishing runs alike,
        # whatever the machine's speed.
        time.sleep(0.05)
        return int(ctx.event.data["n"])

    return ctx.step.run("only", work)


# -- flow control, for tests/test_flow_workers.py ------------------------------------------------
def mark_span(run_id: str, step_id: str, edge: str) -> None:
    """Like ``mark``, with the wall-clock time: the tests measure overlap and lateness."""
    path = os.environ.get("INNGEST_TEST_MARKERS")
    if path:
        with open(path, "a") as markers:
            markers.write(f"{run_id} {step_id} {os.getpid()} {edge} {time.time():.6f}\n")


@inngest_client.create_function(
    fn_id="gated",
    trigger=TriggerEvent(event="testapp/gated"),
    concurrency=[Concurrency(limit=1, key="event.data.key")],
)
def gated(ctx: Context) -> int:
    def work(i: int) -> int:
        mark_span(ctx.run_id, f"s{i}", "start")
        time.sleep(float(ctx.event.data.get("step_seconds", 0.1)))
        mark_span(ctx.run_id, f"s{i}", "end")
        return i

    return sum(ctx.step.run(f"s{i}", work, i) for i in range(3))


@inngest_client.create_function(
    fn_id="debounced",
    trigger=TriggerEvent(event="testapp/debounced"),
    debounce=Debounce(period=timedelta(seconds=1), key="event.data.key"),
)
def debounced(ctx: Context) -> Any:
    mark_span(ctx.run_id, "fired", "start")
    return ctx.event.data.get("n")


@inngest_client.create_function(
    fn_id="throttled",
    trigger=TriggerEvent(event="testapp/throttled"),
    throttle=Throttle(limit=1, period=timedelta(seconds=1), burst=0),
)
def throttled(ctx: Context) -> None:
    mark_span(ctx.run_id, "started", "start")


@inngest_client.create_function(
    fn_id="yearly",
    trigger=TriggerCron(cron="0 0 1 1 *"),  # the test moves its next tick
)
def yearly(ctx: Context) -> str:
    mark_span(ctx.run_id, "tick", "start")
    return str(ctx.event.data["scheduledAt"])
