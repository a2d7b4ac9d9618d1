"""Autodiscovered only by ``test_registry`` (``DJANGO_INNGEST_AUTODISCOVER_MODULE``): a module
that defines a function and then fails, as a typo half-way down a real module would."""

from __future__ import annotations

from django_inngest import Context, Inngest, TriggerEvent

client = Inngest(app_id="broken")


@client.create_function(fn_id="defined-first", trigger=TriggerEvent(event="broken/first"))
def defined_first(ctx: Context) -> None:
    return None


raise RuntimeError("a mistake further down the module")
