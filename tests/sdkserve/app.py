"""The inngest-py functions our engine runs in the tests, one per behaviour under test, and
the URLconf that serves them next to our own endpoints (the app and our server share the
test live server, as a project serving its own SDK app would)."""

from __future__ import annotations

import datetime
import threading
import types
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import inngest
import inngest.django
from django.contrib import admin
from django.urls import include, path

APP_ID = "sdks"
SIGNING_KEY = "signkey-test-0123456789abcdef0123456789abcdef"  # tests/settings.py's
OTHER_KEY = "signkey-test-fedcba9876543210fedcba9876543210"
EVENT_KEY = "test-event-key"
SERVE_PATH = "/api/inngest"
BAD_KEY_PATH = "/api/inngest-badkey"
FLOW_PATH = "/api/inngest-flow"
#: An app combining options Inngest refuses together (batching with cancellation).
BAD_FLOW_PATH = "/api/inngest-bad-flow"
V2_PATH = "/api/inngest-v2"


@dataclass
class Probe:
    """What the app's functions saw, per run: step executions, ``ctx.attempt`` values, and
    gates a test opens to let a blocked step finish."""

    executions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    attempts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    gates: dict[str, threading.Event] = field(default_factory=dict)
    entered: dict[str, threading.Event] = field(default_factory=dict)

    def ran(self, run_id: str, step: str) -> None:
        self.executions[run_id].append(step)

    def count(self, run_id: str, step: str) -> int:
        return self.executions[run_id].count(step)

    def gate(self, key: str) -> threading.Event:
        return self.gates.setdefault(key, threading.Event())

    def arrived(self, key: str) -> threading.Event:
        return self.entered.setdefault(key, threading.Event())

    def reset(self) -> None:
        self.executions.clear()
        self.attempts.clear()
        for gate in self.gates.values():
            gate.set()
        self.gates.clear()
        self.entered.clear()


probe = Probe()


def build_client(
    origin: str, *, signing_key: str = SIGNING_KEY, app_id: str = APP_ID
) -> inngest.Inngest:
    return inngest.Inngest(
        app_id=app_id,
        is_production=True,
        signing_key=signing_key,
        event_key=EVENT_KEY,
        api_base_url=origin,
        event_api_base_url=origin,
    )


def build_functions(client: inngest.Inngest) -> list[inngest.Function[Any]]:
    @client.create_function(fn_id="steps", trigger=inngest.TriggerEvent(event="sdks/steps"))
    def steps(ctx: inngest.ContextSync) -> list[Any]:
        def step(n: int) -> int:
            probe.ran(ctx.run_id, f"s{n}")
            return n

        done = [ctx.step.run(f"s{n}", step, n) for n in range(1, 4)]
        again = ctx.step.run("s1", step, 10)  # the same ID again: hashed "s1:1"
        return [*done, again]

    @client.create_function(fn_id="sleeper", trigger=inngest.TriggerEvent(event="sdks/sleep"))
    def sleeper(ctx: inngest.ContextSync) -> str:
        ctx.step.run("before", lambda: probe.ran(ctx.run_id, "before"))
        ctx.step.sleep("nap", timedelta(seconds=int(ctx.event.data.get("seconds", 2))))
        ctx.step.run("after", lambda: probe.ran(ctx.run_id, "after"))
        return "awake"

    @client.create_function(fn_id="waiter", trigger=inngest.TriggerEvent(event="sdks/wait"))
    def waiter(ctx: inngest.ContextSync) -> Any:
        got = ctx.step.wait_for_event(
            "approval",
            event="sdks/approved",
            if_exp="async.data.id == event.data.id",
            timeout=timedelta(seconds=int(ctx.event.data.get("timeout", 3600))),
        )
        return None if got is None else {"by": got.data.get("by"), "name": got.name}

    @client.create_function(
        fn_id="flaky", trigger=inngest.TriggerEvent(event="sdks/flaky"), retries=3
    )
    def flaky(ctx: inngest.ContextSync) -> str:
        def attempt() -> str:
            probe.attempts[ctx.run_id].append(ctx.attempt)
            probe.ran(ctx.run_id, "flaky")
            if probe.count(ctx.run_id, "flaky") <= int(ctx.event.data.get("failures", 2)):
                raise RuntimeError(f"failure {probe.count(ctx.run_id, 'flaky')}")
            return "ok"

        return ctx.step.run("attempt", attempt)

    def record_failure(ctx: inngest.ContextSync) -> dict[str, Any]:
        return {"failed": ctx.event.data["function_id"], "error": ctx.event.data["error"]}

    @client.create_function(
        fn_id="doomed",
        trigger=inngest.TriggerEvent(event="sdks/doomed"),
        retries=1,
        on_failure=record_failure,
    )
    def doomed(ctx: inngest.ContextSync) -> Any:
        def boom() -> None:
            probe.ran(ctx.run_id, "boom")
            raise ValueError("kaput")

        try:
            ctx.step.run("boom", boom)
        except inngest.StepError as error:
            if ctx.event.data.get("catch"):
                return {"caught": error.name, "message": error.message}
            raise
        return "unreachable"

    @client.create_function(fn_id="refuser", trigger=inngest.TriggerEvent(event="sdks/refuse"))
    def refuser(ctx: inngest.ContextSync) -> None:
        probe.ran(ctx.run_id, "refuser")
        raise inngest.NonRetriableError("not today")

    @client.create_function(fn_id="later", trigger=inngest.TriggerEvent(event="sdks/later"))
    def later(ctx: inngest.ContextSync) -> str:
        probe.ran(ctx.run_id, "later")
        if probe.count(ctx.run_id, "later") == 1:
            raise inngest.RetryAfterError("busy", retry_after=timedelta(seconds=30))
        return "done"

    @client.create_function(fn_id="fanout", trigger=inngest.TriggerEvent(event="sdks/fanout"))
    def fanout(ctx: inngest.ContextSync) -> dict[str, Any]:
        def branch(name: str) -> str:
            probe.ran(ctx.run_id, name)
            if name == "b" and probe.count(ctx.run_id, "b") == 1 and ctx.event.data.get("flaky"):
                raise RuntimeError("b failed once")
            return name.upper()

        results = ctx.group.parallel(
            tuple((lambda n=n: ctx.step.run(n, branch, n)) for n in ("a", "b", "c"))
        )
        after = ctx.step.run("after", lambda: probe.ran(ctx.run_id, "after") or "after")
        return {"parallel": list(results), "after": after}

    @client.create_function(fn_id="calls-local", trigger=inngest.TriggerEvent(event="sdks/call"))
    def calls_local(ctx: inngest.ContextSync) -> Any:
        greeting = ctx.step.invoke_by_id(
            "greet", app_id="testapp", function_id="hello", data={"name": "sdk"}
        )
        return {"greeting": greeting}

    @client.create_function(fn_id="child", trigger=inngest.TriggerEvent(event="sdks/child"))
    def child(ctx: inngest.ContextSync) -> dict[str, Any]:
        return ctx.step.run("double", lambda: {"doubled": ctx.event.data["n"] * 2})

    @client.create_function(
        fn_id="importer",
        trigger=inngest.TriggerEvent(event="sdks/import.requested"),
        cancel=[
            inngest.Cancel(
                event="sdks/import.cancelled", if_exp="async.data.importId == event.data.importId"
            )
        ],
    )
    def importer(ctx: inngest.ContextSync) -> str:
        ctx.step.run("batch-1", lambda: probe.ran(ctx.run_id, "batch-1"))
        ctx.step.sleep("pause", timedelta(hours=1))
        ctx.step.run("batch-2", lambda: probe.ran(ctx.run_id, "batch-2"))
        return "imported"

    @client.create_function(
        fn_id="cleanup",
        trigger=inngest.TriggerEvent(
            event="inngest/function.cancelled",
            expression=f"event.data.function_id == '{APP_ID}-importer'",
        ),
    )
    def cleanup(ctx: inngest.ContextSync) -> dict[str, Any]:
        original = ctx.event.data["event"]
        return ctx.step.run(
            "delete-partial-import",
            lambda: {"cleaned": original["data"]["importId"], "run": ctx.event.data["run_id"]},
        )

    @client.create_function(fn_id="slow", trigger=inngest.TriggerEvent(event="sdks/slow"))
    def slow(ctx: inngest.ContextSync) -> str:
        def blocked() -> str:
            probe.ran(ctx.run_id, "blocked")
            probe.arrived(ctx.run_id).set()
            probe.gate(ctx.run_id).wait(30)
            return "late"

        ctx.step.run("blocked", blocked)
        ctx.step.run("next", lambda: probe.ran(ctx.run_id, "next"))
        return "finished"

    @client.create_function(fn_id="sender", trigger=inngest.TriggerEvent(event="sdks/send"))
    def sender(ctx: inngest.ContextSync) -> list[str]:
        return ctx.step.send_event(
            "emit", inngest.Event(name="sdks/child", data={"n": ctx.event.data.get("n", 1)})
        )

    @client.create_function(fn_id="big", trigger=inngest.TriggerEvent(event="sdks/big"))
    def big(ctx: inngest.ContextSync) -> int:
        blob = ctx.step.run("blob", lambda: "x" * int(ctx.event.data.get("size", 10_000)))
        tail = ctx.step.run("tail", lambda: len(blob))
        return tail

    @client.create_function(fn_id="gather", trigger=inngest.TriggerEvent(event="sdks/gather"))
    def gather(ctx: inngest.ContextSync) -> list[Any]:
        results = ctx.group.parallel(
            (
                lambda: ctx.step.sleep("rest", timedelta(minutes=10)),
                lambda: ctx.step.wait_for_event(
                    "signal", event="sdks/go", timeout=timedelta(hours=1)
                ),
                lambda: ctx.step.run("work", lambda: probe.ran(ctx.run_id, "work") or "worked"),
            )
        )
        return [None, getattr(results[1], "name", None), results[2]]

    @client.create_function(fn_id="lost", trigger=inngest.TriggerEvent(event="sdks/lost"))
    def lost(ctx: inngest.ContextSync) -> dict[str, Any]:
        try:
            ctx.step.invoke_by_id("call", app_id="nowhere", function_id="missing")
        except inngest.StepError as error:
            return {"name": error.name, "message": error.message}
        return {}

    return [
        gather,
        lost,
        steps,
        sleeper,
        waiter,
        flaky,
        doomed,
        refuser,
        later,
        fanout,
        calls_local,
        child,
        importer,
        cleanup,
        slow,
        sender,
        big,
    ]


def build_flow_controlled(client: inngest.Inngest) -> list[inngest.Function[Any]]:
    """Flow control and a cron trigger, as an SDK app declares them: the engine runs them."""

    @client.create_function(
        fn_id="limited",
        trigger=inngest.TriggerEvent(event="flow/limited"),
        concurrency=[inngest.Concurrency(limit=2, key="event.data.id")],
    )
    def limited(ctx: inngest.ContextSync) -> None:
        return None

    @client.create_function(fn_id="nightly", trigger=inngest.TriggerCron(cron="0 3 * * *"))
    def nightly(ctx: inngest.ContextSync) -> None:
        return None

    return [limited, nightly]


def build_badly_combined(client: inngest.Inngest) -> list[inngest.Function[Any]]:
    """Batching with a cancel rule: Inngest's sync refuses it, and so does ours, naming both."""

    @client.create_function(
        fn_id="batched",
        trigger=inngest.TriggerEvent(event="flow/batched"),
        batch_events=inngest.Batch(max_size=5, timeout=datetime.timedelta(seconds=5)),
        cancel=[inngest.Cancel(event="flow/stop")],
    )
    def batched(ctx: inngest.ContextSync) -> None:
        return None

    return [batched]


def build_v2(client: inngest.Inngest) -> list[inngest.Function[Any]]:
    """The next version of the app: ``steps`` changed (5 retries, another trigger), the
    other functions removed."""

    @client.create_function(
        fn_id="steps", trigger=inngest.TriggerEvent(event="sdks/steps.v2"), retries=5
    )
    def steps(ctx: inngest.ContextSync) -> str:
        return ctx.step.run("v2", lambda: "v2")

    return [steps]


@dataclass(frozen=True)
class ServedApps:
    client: inngest.Inngest
    functions: list[inngest.Function[Any]]
    urlconf: types.ModuleType


def build(origin: str) -> ServedApps:
    """The app served at ``SERVE_PATH``, a copy holding another signing key at
    ``BAD_KEY_PATH``, its next version at ``V2_PATH``, an app using flow control at
    ``FLOW_PATH``, and our own endpoints, in one URLconf."""
    client = build_client(origin)
    functions = build_functions(client)
    impostor = build_client(origin, signing_key=OTHER_KEY)
    impostor_functions = build_functions(impostor)
    v2 = build_client(origin)
    flowing = build_client(origin, app_id="sdks-flow")
    misconfigured = build_client(origin, app_id="sdks-bad-flow")
    module = types.ModuleType("tests_sdkserve_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("admin/", admin.site.urls),
        path("", include("django_inngest.urls")),
        inngest.django.serve(client, functions, serve_path=SERVE_PATH),
        inngest.django.serve(impostor, impostor_functions, serve_path=BAD_KEY_PATH),
        inngest.django.serve(v2, build_v2(v2), serve_path=V2_PATH),
        inngest.django.serve(flowing, build_flow_controlled(flowing), serve_path=FLOW_PATH),
        inngest.django.serve(
            misconfigured, build_badly_combined(misconfigured), serve_path=BAD_FLOW_PATH
        ),
    ]
    return ServedApps(client=client, functions=functions, urlconf=module)
