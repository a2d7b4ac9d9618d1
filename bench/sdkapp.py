"""The SDK benchmark's app: the 10-step no-op function of ``benchapp``, written with the
official inngest SDK (inngest-py) and served by bench.urls when ``BENCH_SDK_APP`` is set."""

from __future__ import annotations

import os

import inngest

SIGNING_KEY = "signkey-bench-0123456789abcdef0123456789abcdef"  # bench/settings.py's
APP_ID = "sdkbench"
STEPS_10 = f"{APP_ID}-steps-10"

client = inngest.Inngest(
    app_id=APP_ID,
    is_production=True,
    signing_key=SIGNING_KEY,
    event_key="bench-event-key",
    # Synced in-band and sending no events: the app never calls the server back.
    api_base_url=os.environ.get("BENCH_SERVER_URL", "http://127.0.0.1:1"),
)


def _noop(i: int) -> int:
    return i


@client.create_function(fn_id="steps-10", trigger=inngest.TriggerEvent(event="sdkbench/steps.10"))
def steps_10(ctx: inngest.ContextSync) -> int:
    total = 0
    for i in range(10):
        total += ctx.step.run(f"step-{i}", _noop, i)
    return total


functions = [steps_10]
