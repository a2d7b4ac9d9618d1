"""Functions written as inngest-py's documentation writes them (Python SDK reference: steps,
parallel, invoke, wait_for_event, send_event, errors and retries, middleware), ported by
changing one line: ``import django_inngest as inngest``. Each comes in an async form
(``inngest.Context``, ``await ctx.step...``) and, where the docs show one, a sync form
(``inngest.ContextSync``). ``tests/test_port_qcluster.py`` runs them on real ``qcluster``
workers and asserts the documented outcome.

Step bodies append ``<run_id> <label> <pid>`` to ``INNGEST_TEST_MARKERS`` so that the tests can
count executions across processes.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import time
from typing import Any

import django_inngest as inngest
from django_inngest.contrib.step_timing import StepTimingMiddleware

# The client's middleware: every function of this app logs its steps' durations.
port_client = inngest.Inngest(app_id="port", middleware=[StepTimingMiddleware])


def mark(run_id: str, label: str) -> None:
    path = os.environ.get("INNGEST_TEST_MARKERS")
    if path:
        with open(path, "a") as markers:
            markers.write(f"{run_id} {label} {os.getpid()}\n")


# -- steps: run, sleep (docs: "Python SDK > Steps") ----------------------------------------------


async def get_user(user_id: str) -> dict[str, Any]:
    await asyncio.sleep(0.01)  # stands for an HTTP call
    return {"id": user_id, "name": user_id.title()}


def count_users_events(user_id: str) -> int:
    # Sync step bodies run on the worker thread, so Django's ORM is usable in them.
    from django_inngest.models import Event

    return Event.objects.filter(name="port/user.signup", data__user_id=user_id).count()


@port_client.create_function(
    fn_id="signup-async", trigger=inngest.TriggerEvent(event="port/user.signup")
)
async def signup_async(ctx: inngest.Context) -> inngest.JSON:
    user = await ctx.step.run("get-user", get_user, ctx.event.data["user_id"])
    await ctx.step.sleep("wait-a-moment", datetime.timedelta(milliseconds=500))
    signups = await ctx.step.run("count-signups", count_users_events, user["id"])
    mark(ctx.run_id, "signup-async-returned")
    return {"user": user, "signups": signups}


@port_client.create_function(
    fn_id="signup-sync", trigger=inngest.TriggerEvent(event="port/user.signup")
)
def signup_sync(ctx: inngest.ContextSync) -> inngest.JSON:
    user = ctx.step.run("get-user", lambda: {"id": ctx.event.data["user_id"]})
    ctx.step.sleep("wait-a-moment", 500)  # milliseconds, as in inngest-py
    signups = ctx.step.run("count-signups", count_users_events, user["id"])
    return {"user": user, "signups": signups}


# -- retries: ctx.attempt ("reset when steps complete") ----------------------------------------


@port_client.create_function(
    fn_id="charge-async", trigger=inngest.TriggerEvent(event="port/charge"), retries=4
)
async def charge_async(ctx: inngest.Context) -> inngest.JSON:
    order = await ctx.step.run("load-order", lambda: {"amount": 42})

    async def charge() -> dict[str, Any]:
        mark(ctx.run_id, f"charge-attempt-{ctx.attempt}")
        if ctx.attempt >= 2:
            return {"provider": "fallback", "amount": order["amount"]}
        raise ConnectionError("primary gateway timed out")

    return await ctx.step.run("charge", charge)


@port_client.create_function(
    fn_id="charge-sync", trigger=inngest.TriggerEvent(event="port/charge"), retries=4
)
def charge_sync(ctx: inngest.ContextSync) -> inngest.JSON:
    order = ctx.step.run("load-order", lambda: {"amount": 42})

    def charge() -> dict[str, Any]:
        mark(ctx.run_id, f"charge-attempt-{ctx.attempt}")
        if ctx.attempt >= 2:
            return {"provider": "fallback", "amount": order["amount"]}
        raise ConnectionError("primary gateway timed out")

    return ctx.step.run("charge", charge)


# -- parallel, RACE (docs: "Parallel"; inngest-py's parallel_mode_race case) ---------------------


@port_client.create_function(fn_id="race-async", trigger=inngest.TriggerEvent(event="port/race"))
async def race_async(ctx: inngest.Context) -> inngest.JSON:
    async def slow(label: str) -> str:
        await asyncio.sleep(1)
        return label

    async def branch_a() -> list[str]:
        return [await ctx.step.run("a.1", lambda: "a.1"), await ctx.step.run("a.2", lambda: "a.2")]

    async def branch_b() -> list[str]:
        return [await ctx.step.run("b.1", slow, "b.1"), await ctx.step.run("b.2", slow, "b.2")]

    results = await ctx.group.parallel(
        (branch_a, branch_b), parallel_mode=inngest.ParallelMode.RACE
    )
    return list(results)


@port_client.create_function(fn_id="race-sync", trigger=inngest.TriggerEvent(event="port/race"))
def race_sync(ctx: inngest.ContextSync) -> inngest.JSON:
    def slow(label: str) -> str:
        time.sleep(1)
        return label

    def branch_a() -> list[str]:
        return [ctx.step.run("a.1", lambda: "a.1"), ctx.step.run("a.2", lambda: "a.2")]

    def branch_b() -> list[str]:
        return [ctx.step.run("b.1", slow, "b.1"), ctx.step.run("b.2", slow, "b.2")]

    return list(ctx.group.parallel((branch_a, branch_b), parallel_mode=inngest.ParallelMode.RACE))


# -- send_event, wait_for_event, invoke ----------------------------------------------------------


@port_client.create_function(
    fn_id="make-receipt", trigger=inngest.TriggerEvent(event="port/receipt.requested")
)
def make_receipt(ctx: inngest.ContextSync) -> inngest.JSON:
    return {"receipt": f"R-{ctx.event.data['order']}", "amount": ctx.event.data["amount"]}


@port_client.create_function(
    fn_id="order-async", trigger=inngest.TriggerEvent(event="port/order.created")
)
async def order_async(ctx: inngest.Context) -> inngest.JSON:
    order = ctx.event.data["order"]
    await ctx.step.send_event(
        "notify", [inngest.Event(name="port/order.notified", data={"order": order})]
    )
    paid = await ctx.step.wait_for_event(
        "wait-for-payment",
        event="port/order.paid",
        if_exp="event.data.order == async.data.order",
        timeout=datetime.timedelta(seconds=60),
    )
    if paid is None:
        return {"order": order, "status": "unpaid"}
    receipt = await ctx.step.invoke(
        "receipt", function=make_receipt, data={"order": order, "amount": paid.data["amount"]}
    )
    return {"order": order, "status": "paid", "receipt": receipt}


# -- errors: NonRetriableError and an async on_failure -------------------------------------------


async def import_failed(ctx: inngest.Context) -> inngest.JSON:
    error = ctx.event.data["error"]
    await ctx.step.run("alert", lambda: mark(ctx.event.data["run_id"], "alerted"))
    return {"failed_run": ctx.event.data["run_id"], "message": error["message"]}


@port_client.create_function(
    fn_id="import-async",
    trigger=inngest.TriggerEvent(event="port/import"),
    retries=2,
    on_failure=import_failed,
)
async def import_async(ctx: inngest.Context) -> None:
    async def parse() -> None:
        raise inngest.NonRetriableError("the file is not a CSV")

    await ctx.step.run("parse", parse)


# -- cancellation of an async run ----------------------------------------------------------------


@port_client.create_function(
    fn_id="nap-async",
    trigger=inngest.TriggerEvent(event="port/nap"),
    cancel=[inngest.Cancel(event="port/nap.cancel", if_exp="async.data.id == event.data.id")],
)
async def nap_async(ctx: inngest.Context) -> str:
    await ctx.step.run("before", lambda: mark(ctx.run_id, "before"))
    await ctx.step.sleep("nap", datetime.timedelta(minutes=10))
    await ctx.step.run("after", lambda: mark(ctx.run_id, "after"))
    return "woke"
