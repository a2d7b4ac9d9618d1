"""Who cancelled a run and why, the links between runs and the events around them, and the
indexes that find them.

* Runs: ``cancel_actor`` (the Django user, "signing key", the CLI's OS user, the event) and
  ``cancel_event_id`` (the cancel_on event); ``cancel_source`` widened for "timeout" and
  "singleton". Bulk cancellations: ``reason`` and ``actor``.
* Steps: ``matched_event_id``, the event a ``wait_for_event`` matched.
* Indexes: a run's ``inngest/function.cancelled`` / ``function.failed`` event (its sender ID is
  the run ID), the runs an event cancelled, the waits an event resumed. All are partial, so they
  stay small; on PostgreSQL they are built ``CONCURRENTLY`` (the migration is not atomic), so
  that large tables keep taking writes while they build.
"""

from django.db import migrations, models

CHOICES = [
    ("event", "cancel_on event"),
    ("api", "REST API"),
    ("bulk", "Bulk cancellation"),
    ("admin", "Django admin"),
    ("cli", "Management command"),
    ("python", "Python"),
    ("timeout", "Timeout"),
    ("singleton", "Singleton"),
]

INDEXES = {
    "event": [
        models.Index(
            condition=models.Q(("name", "inngest/function.cancelled")),
            fields=["external_id"],
            name="inngest_event_cancelled_of",
        ),
        models.Index(
            condition=models.Q(("name", "inngest/function.failed")),
            fields=["external_id"],
            name="inngest_event_failed_of",
        ),
    ],
    "functionrun": [
        models.Index(
            condition=models.Q(("cancel_event_id__isnull", False)),
            fields=["cancel_event_id"],
            name="inngest_run_cancel_event",
        ),
    ],
    "steprun": [
        models.Index(
            condition=models.Q(("matched_event_id__isnull", False)),
            fields=["matched_event_id"],
            name="inngest_step_matched_event",
        ),
    ],
}


def create_indexes(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for model_name, indexes in INDEXES.items():
        model = apps.get_model("django_inngest", model_name)
        for index in indexes:
            if postgres:
                schema_editor.execute(index.create_sql(model, schema_editor, concurrently=True))
            else:
                schema_editor.add_index(model, index)


def drop_indexes(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for model_name, indexes in INDEXES.items():
        model = apps.get_model("django_inngest", model_name)
        for index in indexes:
            if postgres:
                schema_editor.execute(index.remove_sql(model, schema_editor, concurrently=True))
            else:
                schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("django_inngest", "0005_runtime_recovery"),
    ]

    operations = [
        migrations.AddField(
            model_name="cancellation",
            name="actor",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The Django user, or “signing key”, or the command line's OS user.",
                max_length=255,
                verbose_name="created by whom",
            ),
        ),
        migrations.AddField(
            model_name="cancellation",
            name="reason",
            field=models.TextField(
                blank=True,
                default="",
                help_text="Recorded on every run it cancels.",
                verbose_name="reason",
            ),
        ),
        migrations.AddField(
            model_name="functionrun",
            name="cancel_actor",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The Django user, “signing key”, the OS user of the CLI, or the event.",
                max_length=255,
                verbose_name="cancelled by whom",
            ),
        ),
        migrations.AddField(
            model_name="functionrun",
            name="cancel_event_id",
            field=models.CharField(
                blank=True,
                null=True,
                help_text="Internal ID of the cancel_on event that cancelled the run.",
                max_length=26,
                verbose_name="cancelling event",
            ),
        ),
        migrations.AddField(
            model_name="steprun",
            name="matched_event_id",
            field=models.CharField(
                blank=True,
                null=True,
                help_text="Internal ID of the event a wait_for_event matched.",
                max_length=26,
                verbose_name="matched event",
            ),
        ),
        migrations.AlterField(
            model_name="cancellation",
            name="source",
            field=models.CharField(
                choices=CHOICES, default="api", max_length=16, verbose_name="created by"
            ),
        ),
        migrations.AlterField(
            model_name="functionrun",
            name="cancel_source",
            field=models.CharField(
                blank=True, choices=CHOICES, default="", max_length=16, verbose_name="cancelled by"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name=model_name, index=index)
                for model_name, indexes in INDEXES.items()
                for index in indexes
            ],
            database_operations=[migrations.RunPython(create_indexes, drop_indexes)],
        ),
    ]
