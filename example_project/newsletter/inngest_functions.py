"""The seed scenario: an import that can be cancelled, and a cleanup run after cancellation.

Ported from Inngest's "Cleanup after function cancellation" example; IDs, names and event
names are exactly as there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django_inngest import Cancel, Concurrency, ContextSync, Inngest, TriggerCron, TriggerEvent
from django_inngest.models import FunctionRun, RunStatus
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
    # Beyond the seed: at most two batches are fetched at once, across all imports and all
    # workers, so the contact source is never hammered (a pausing import holds no slot).
    concurrency=[Concurrency(limit=2)],
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


def delete_stale_contacts() -> int:
    """Contacts of imports that never completed (cancelled or failed) are removed; the cleanup
    function above usually got there first."""
    completed = FunctionRun.objects.filter(
        function_id="newsletter-app-import-all-contacts", status=RunStatus.COMPLETED
    ).values_list("event__data__importId", flat=True)
    active = FunctionRun.objects.active().values_list("event__data__importId", flat=True)
    return (
        Contact.objects.exclude(import_id__in=completed).exclude(import_id__in=active).delete()[0]
    )


# Beyond the seed: a nightly schedule, fired by the workers themselves (no cron daemon).
@inngest_client.create_function(
    fn_id="cleanup-stale-imports",
    name="Nightly cleanup of stale imports",
    trigger=TriggerCron(cron="TZ=Europe/Paris 0 3 * * *"),
)
def cleanup_stale_imports(ctx: ContextSync) -> dict[str, Any]:
    deleted = ctx.step.run("delete-stale-contacts", delete_stale_contacts)
    ctx.logger.info(f"Nightly cleanup removed {deleted} stale contacts")
    return {"deleted_contacts": deleted, "scheduled_at": ctx.event.data["scheduledAt"]}
