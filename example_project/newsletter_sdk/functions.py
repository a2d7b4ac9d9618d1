"""Inngest's "Cleanup after function cancellation" example, written with inngest-py.

Nothing here imports django_inngest: this is plain inngest-py code, pointed at a
django-inngest server instead of Inngest Cloud or the Dev Server. Its events are named
``contacts.sdk/...`` only so that, in this one project, they do not also start the
in-process copy in ``newsletter/inngest_functions.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import inngest
from django.conf import settings
from newsletter.models import Contact

inngest_client = inngest.Inngest(
    app_id="newsletter-sdk-app",
    is_production=True,  # signed calls both ways, as with Inngest Cloud
    signing_key=settings.DJANGO_INNGEST_SIGNING_KEY,  # the same key as the server
    event_key=settings.DJANGO_INNGEST_EVENT_KEYS[0],
    # Where django-inngest is served: its /fn/register, /e/<key> and /v0 endpoints.
    api_base_url=settings.INNGEST_SERVER_URL,
    event_api_base_url=settings.INNGEST_SERVER_URL,
)

BATCH_SIZE = 25


def import_batch(import_id: str, batch: int) -> int:
    Contact.objects.bulk_create(
        Contact(import_id=import_id, email=f"sdk-contact-{batch}-{n}@example.com")
        for n in range(BATCH_SIZE)
    )
    return BATCH_SIZE


# This is our "import" function that will get cancelled
@inngest_client.create_function(
    fn_id="import-all-contacts",
    trigger=inngest.TriggerEvent(event="contacts.sdk/import.requested"),
    cancel=[
        inngest.Cancel(
            event="contacts.sdk/import.cancelled",
            if_exp="async.data.importId == event.data.importId",
        )
    ],
)
def import_all_contacts(ctx: inngest.ContextSync) -> dict[str, Any]:
    import_id = ctx.event.data["importId"]
    batches = int(ctx.event.data.get("batches", 6))  # type: ignore[arg-type]
    imported = 0
    for batch in range(batches):
        imported += ctx.step.run(f"import-batch-{batch}", import_batch, import_id, batch)
        if batch < batches - 1:
            ctx.step.sleep(f"pause-{batch}", timedelta(seconds=1))
    return {"importId": import_id, "imported": imported}


def delete_partial_import(import_id: str) -> int:
    return Contact.objects.filter(import_id=import_id).delete()[0]


# This function will be run only when the matching function_id has a run that is cancelled
@inngest_client.create_function(
    name="Cleanup cancelled import",
    fn_id="cleanup-cancelled-import",
    trigger=inngest.TriggerEvent(
        event="inngest/function.cancelled",
        # The function ID is the App ID and the function's id joined with a hyphen
        expression="event.data.function_id == 'newsletter-sdk-app-import-all-contacts'",
    ),
)
def cleanup_cancelled_import(ctx: inngest.ContextSync) -> dict[str, Any]:
    # The event that triggered our original function run is passed nested in our event payload.
    original_triggering_event = ctx.event.data["event"]
    import_id = original_triggering_event["data"]["importId"]  # type: ignore[index]
    ctx.logger.info(f"Import was cancelled: {import_id}")
    deleted = ctx.step.run("delete-partial-import", delete_partial_import, import_id)
    return {"importId": import_id, "deleted_contacts": deleted}


functions = [import_all_contacts, cleanup_cancelled_import]
