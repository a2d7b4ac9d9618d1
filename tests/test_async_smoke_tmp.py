from __future__ import annotations
import asyncio
from typing import Any
import pytest
from django_inngest import Context, Event, Inngest, TriggerEvent, ParallelMode
from django_inngest.models import FunctionRun, RunStatus, StepRun
from django_inngest.testing import drain
from tests.helpers import make_due, only_run

pytestmark = pytest.mark.django_db(transaction=True)

def test_async_basic(inngest: Inngest) -> None:
    def count_runs() -> int:
        return FunctionRun.objects.count()

    async def slow(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    @inngest.create_function(fn_id="a", trigger=TriggerEvent(event="t/a"))
    async def fn(ctx: Context) -> Any:
        a = await ctx.step.run("a", slow, 2)
        b = await ctx.step.run("b", count_runs)
        c = await ctx.step.run("c", lambda: slow(5))
        res = await ctx.group.parallel((lambda: ctx.step.run("p1", slow, 1), lambda: ctx.step.run("p2", count_runs)))
        await ctx.step.sleep("nap", 50)
        return [a, b, c, list(res)]

    inngest.send_sync(Event(name="t/a"))
    run = only_run("test-app-a")
    print(run.status, run.error)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == [4, 1, 10, [2, 1]]
