"""Sleeps of any positive duration, to the millisecond (inngest-py documents no minimum; the code
this branch started from refused anything under 1 s). A sleep already due when reached does not
pause; one that ends within a timer poll is slept in the worker; a longer one pauses the run
until exactly its end. Zero or negative durations are an error at the call (test_step_semantics).
"""

from __future__ import annotations

import datetime
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_inngest import Context, ContextSync, Event, Inngest, TriggerEvent
from django_inngest.models import RunStatus, StepStatus, WaitKind
from django_inngest.testing import drain
from tests.helpers import only_run

pytestmark = pytest.mark.django_db(transaction=True)


def sleep_step(function_id: str) -> Any:
    return only_run(function_id).steps.get(step_id="nap")


@pytest.mark.parametrize("duration", [1, 50, timedelta(milliseconds=200)], ids=str)
def test_a_sleep_within_one_timer_poll_is_slept_in_the_worker(
    inngest: Inngest, settings: Any, duration: int | timedelta
) -> None:
    settings.DJANGO_INNGEST_TIMER_POLL_SECONDS = 0.25

    @inngest.create_function(fn_id="short", trigger=TriggerEvent(event="t/short"))
    def fn(ctx: ContextSync) -> str:
        before = ctx.step.run("before", lambda: timezone.now().isoformat())
        ctx.step.sleep("nap", duration)
        after = ctx.step.run("after", lambda: timezone.now().isoformat())
        return f"{before} {after}"

    inngest.send_sync(Event(name="t/short"))
    run = only_run("test-app-short")
    # Completed inline in the one turn send_sync ran: the run never paused.
    assert run.status == RunStatus.COMPLETED
    nap = sleep_step("test-app-short")
    assert nap.status == StepStatus.COMPLETED and nap.ended_at is not None
    assert nap.ended_at >= nap.wake_at  # never early
    before, after = (datetime.datetime.fromisoformat(t) for t in run.output.split())
    wanted = duration if isinstance(duration, timedelta) else timedelta(milliseconds=duration)
    assert after - before >= wanted


def test_a_sleep_longer_than_a_poll_pauses_until_its_exact_end(
    inngest: Inngest, settings: Any
) -> None:
    settings.DJANGO_INNGEST_TIMER_POLL_SECONDS = 0.25

    @inngest.create_function(fn_id="mid", trigger=TriggerEvent(event="t/mid"))
    async def fn(ctx: Context) -> str:
        await ctx.step.sleep("nap", 1500)  # 1.5 s, in milliseconds as in inngest-py
        return "awake"

    sent = timezone.now()
    inngest.send_sync(Event(name="t/mid"))
    run = only_run("test-app-mid")
    nap = sleep_step("test-app-mid")
    assert (run.status, run.wait_kind) == (RunStatus.RUNNING, WaitKind.SLEEP)
    assert run.ready_at == nap.wake_at  # to the microsecond: no rounding to seconds
    assert timedelta(milliseconds=1500) <= nap.wake_at - sent < timedelta(milliseconds=1900)
    assert drain() == 0  # not due yet: nothing to do


def test_a_sleep_until_in_the_past_does_not_pause(inngest: Inngest) -> None:
    @inngest.create_function(fn_id="past", trigger=TriggerEvent(event="t/past"))
    def fn(ctx: ContextSync) -> str:
        ctx.step.sleep_until("nap", timezone.now() - timedelta(minutes=1))
        return "awake"

    inngest.send_sync(Event(name="t/past"))
    run = only_run("test-app-past")
    assert (run.status, run.output) == (RunStatus.COMPLETED, "awake")
    assert sleep_step("test-app-past").status == StepStatus.COMPLETED


def test_a_naive_sleep_until_is_local_time_as_in_inngest_py(inngest: Inngest) -> None:
    target = timezone.now() + timedelta(hours=2)

    @inngest.create_function(fn_id="naive", trigger=TriggerEvent(event="t/naive"))
    def fn(ctx: ContextSync) -> None:
        ctx.step.sleep_until("nap", target.astimezone().replace(tzinfo=None))

    inngest.send_sync(Event(name="t/naive"))
    nap = sleep_step("test-app-naive")
    assert abs((nap.wake_at - target).total_seconds()) < 0.001


@pytest.mark.parametrize("duration", [0, -1, timedelta(seconds=-2)], ids=str)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_zero_or_negative_sleeps_are_an_error_at_the_call(
    inngest: Inngest, duration: Any, kind: str
) -> None:
    if kind == "sync":

        @inngest.create_function(fn_id="bad", trigger=TriggerEvent(event="t/bad"), retries=0)
        def fn(ctx: ContextSync) -> None:
            ctx.step.sleep("nap", duration)

    else:

        @inngest.create_function(fn_id="bad", trigger=TriggerEvent(event="t/bad"), retries=0)
        async def afn(ctx: Context) -> None:
            await ctx.step.sleep("nap", duration)

    inngest.send_sync(Event(name="t/bad"))
    run = only_run("test-app-bad")
    assert run.status == RunStatus.FAILED
    assert run.error["message"].startswith("step.sleep duration must be positive")
    assert not run.steps.exists()
