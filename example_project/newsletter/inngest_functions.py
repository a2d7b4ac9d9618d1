"""The seed scenario: an import that can be cancelled, and a cleanup run after cancellation.

Ported from Inngest's "Cleanup after function cancellation" example; IDs, names and event
names are exactly as there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django_inngest import Cancel, ContextSync, Inngest, TriggerEvent
from newsletter.models import Contact

inngest_client = Inngest(app_id="newsletter-app")

BATCH_SIZE = 25


def import_batch(import_id: str, batch: int) -> int:
    """One batch of the (simulated) contact source, written to the database."""
    Contact.objects.bulk_create(
        Contact(import_id=import_id, email=f"contact-{batch}-{n}@example.com")
        for n in range(BATCH_SIZE)
    )
    return BATCH_SIZE


# This is our "import" function that will get cancelled
@inngest_client.create_function(
    fn_id="import-all-contacts",
    trigger=TriggerEvent(event="contacts/import.requested"),
    cancel=[
        Cancel(
            event="contacts/import.cancelled",
            if_exp="async.data.importId == event.data.importId",
        )
    ],
)
def import_all_contacts(ctx: ContextSync) -> dict[str, Any]:
    # This is a long running function: a step per batch, with a pause between batches.
    import_id = ctx.event.data["importId"]
    batches = int(ctx.event.data.get("batches", 6))
    imported = 0
    for batch in range(batches):
        imported += ctx.step.run(f"import-batch-{batch}", import_batch, import_id, batch)
        ctx.logger.info(f"Imported batch {batch + 1}/{batches} of {import_id}")
        if batch < batches - 1:
            ctx.step.sleep(f"pause-{batch}", timedelta(seconds=1))
    return {"importId": import_id, "imported": imported}


def delete_partial_import(import_id: str) -> int:
    return Contact.objects.filter(import_id=import_id).delete()[0]


# This function will be run only when the matching function_id has a run that is cancelled
@inngest_client.create_function(
    name="Cleanup cancelled import",
    fn_id="cleanup-cancelled-import",
    trigger=TriggerEvent(
        event="inngest/function.cancelled",
        # The function ID is the App ID and the function's id joined with a hyphen
        expression="event.data.function_id == 'newsletter-app-import-all-contacts'",
    ),
)
def cleanup_cancelled_import(ctx: ContextSync) -> dict[str, Any]:
    # This code will execute after your function is cancelled.
    # The event that triggered our original function run is passed nested in our event payload.
    original_triggering_event = ctx.event.data["event"]
    import_id = original_triggering_event["data"]["importId"]
    ctx.logger.info(f"Import was cancelled: {import_id}")
    deleted = ctx.step.run("delete-partial-import", delete_partial_import, import_id)
    return {"importId": import_id, "deleted_contacts": deleted}
