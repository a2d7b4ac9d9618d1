"""Functions written with inngest-py, covering every opcode the protocol layer must handle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import inngest

APP_ID = "sdkapp"
SIGNING_KEY = "signkey-test-0123456789abcdef0123456789abcdef"  # also in fixtures.py
EVENT_KEY = "test-event-key"
WAKE_AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def build_client(
    api_origin: str, *, signing_key: str = SIGNING_KEY, is_production: bool = True
) -> inngest.Inngest:
    """A client whose API and event API are ``api_origin``; in cloud mode (the default) it
    checks signatures, in dev mode it checks nothing."""
    return inngest.Inngest(
        app_id=APP_ID,
        is_production=is_production,
        signing_key=signing_key,
        event_key=EVENT_KEY,
        api_base_url=api_origin,
        event_api_base_url=api_origin,
    )


@dataclass(frozen=True)
class SyncFunctions:
    child: inngest.Function[Any]
    flow: inngest.Function[Any]
    race: inngest.Function[Any]
    failing_step: inngest.Function[Any]
    non_retriable: inngest.Function[Any]
    retry_after: inngest.Function[Any]
    flow_controlled: inngest.Function[Any]
    nightly: inngest.Function[Any]

    def all(self) -> list[inngest.Function[Any]]:
        return list(vars(self).values())


def build_sync_functions(client: inngest.Inngest) -> SyncFunctions:
    @client.create_function(fn_id="child", trigger=inngest.TriggerEvent(event="sdk/child"))
    def child(ctx: inngest.ContextSync) -> dict[str, Any]:
        return {"doubled": ctx.event.data["n"] * 2}  # type: ignore[operator]

    def flow_failed(ctx: inngest.ContextSync) -> str:
        return "cleaned up"

    @client.create_function(
        fn_id="flow",
        trigger=inngest.TriggerEvent(event="sdk/flow", expression="event.data.go == true"),
        cancel=[
            inngest.Cancel(
                event="sdk/cancel",
                if_exp="async.data.id == event.data.id",
                timeout=timedelta(hours=1),
            )
        ],
        retries=2,
        on_failure=flow_failed,
    )
    def flow(ctx: inngest.ContextSync) -> dict[str, Any]:
        first = ctx.step.run("a", lambda: {"n": 1})
        second = ctx.step.run("a", lambda: {"n": first["n"] + 1})  # the same ID again
        ctx.step.sleep("nap", timedelta(minutes=5))
        ctx.step.sleep_until("until", WAKE_AT)
        approval = ctx.step.wait_for_event(
            "wait",
            event="sdk/approved",
            if_exp="async.data.id == event.data.id",
            timeout=timedelta(hours=1),
        )
        doubled = ctx.step.invoke("child", function=child, data={"n": second["n"]})
        sent = ctx.step.send_event("emit", inngest.Event(name="sdk/emitted", data={"n": 2}))
        p1, p2 = ctx.group.parallel(
            (lambda: ctx.step.run("p1", lambda: "one"), lambda: ctx.step.run("p2", lambda: "two"))
        )
        return {
            "first": first,
            "second": second,
            "approved_by": approval.data.get("by") if approval else None,
            "doubled": doubled,
            "sent": sent,
            "parallel": [p1, p2],
        }

    @client.create_function(fn_id="race", trigger=inngest.TriggerEvent(event="sdk/race"))
    def race(ctx: inngest.ContextSync) -> list[str]:
        results = ctx.group.parallel(
            (lambda: ctx.step.run("r1", lambda: "r1"), lambda: ctx.step.run("r2", lambda: "r2")),
            parallel_mode=inngest.ParallelMode.RACE,
        )
        return list(results)

    @client.create_function(
        fn_id="failing-step", trigger=inngest.TriggerEvent(event="sdk/fail"), retries=1
    )
    def failing_step(ctx: inngest.ContextSync) -> dict[str, Any]:
        def boom() -> None:
            raise ValueError("kaput")

        try:
            value = ctx.step.run("boom", boom)
        except inngest.StepError as error:
            return {"caught": True, "name": error.name, "message": error.message}
        return {"caught": False, "value": value}

    @client.create_function(fn_id="non-retriable", trigger=inngest.TriggerEvent(event="sdk/nr"))
    def non_retriable(ctx: inngest.ContextSync) -> None:
        raise inngest.NonRetriableError("not today")

    @client.create_function(fn_id="retry-after", trigger=inngest.TriggerEvent(event="sdk/ra"))
    def retry_after(ctx: inngest.ContextSync) -> None:
        raise inngest.RetryAfterError("later", retry_after=WAKE_AT)

    @client.create_function(
        fn_id="flow-controlled",
        trigger=inngest.TriggerEvent(event="sdk/limited"),
        concurrency=[inngest.Concurrency(limit=3, key="event.data.id")],
        throttle=inngest.Throttle(limit=10, period=timedelta(minutes=1)),
        debounce=inngest.Debounce(period=timedelta(seconds=30)),
    )
    def flow_controlled(ctx: inngest.ContextSync) -> None:
        return None

    @client.create_function(fn_id="nightly", trigger=inngest.TriggerCron(cron="0 3 * * *"))
    def nightly(ctx: inngest.ContextSync) -> None:
        return None

    return SyncFunctions(
        child=child,
        flow=flow,
        race=race,
        failing_step=failing_step,
        non_retriable=non_retriable,
        retry_after=retry_after,
        flow_controlled=flow_controlled,
        nightly=nightly,
    )


def build_async_functions(client: inngest.Inngest) -> list[inngest.Function[Any]]:
    @client.create_function(fn_id="async-flow", trigger=inngest.TriggerEvent(event="sdk/async"))
    async def async_flow(ctx: inngest.Context) -> dict[str, Any]:
        async def fetch() -> dict[str, bool]:
            return {"ok": True}

        got = await ctx.step.run("fetch", fetch)
        await ctx.step.sleep("rest", timedelta(seconds=30))
        sent = await ctx.step.send_event("emit", inngest.Event(name="sdk/async-emitted"))
        return {"got": got, "sent": sent}

    return [async_flow]
