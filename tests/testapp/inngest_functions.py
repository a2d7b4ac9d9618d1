"""Found by real autodiscovery (tests/settings.py installs this app)."""

from __future__ import annotations

from django_inngest import Context, Inngest, TriggerEvent

inngest_client = Inngest(app_id="testapp")


@inngest_client.create_function(fn_id="hello", trigger=TriggerEvent(event="testapp/hello"))
def hello(ctx: Context) -> str:
    return ctx.step.run("greet", lambda: f"hello {ctx.event.data.get('name', 'world')}")
