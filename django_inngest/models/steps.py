"""Memoized steps, and their one conditional write: ``StepRunQuerySet.save_if_owned``."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime

from django.db import IntegrityError, models
from django.utils.translation import gettext_lazy as _

from django_inngest import database, sql
from django_inngest.models.choices import RunStatus, StepKind, StepStatus
from django_inngest.models.runs import FunctionRun

#: A step in these states had not finished when its run ended.
UNFINISHED_STATUSES = (
    StepStatus.RUNNING,
    StepStatus.RETRYING,
    StepStatus.SLEEPING,
    StepStatus.WAITING,
)


class StepRunQuerySet(models.QuerySet["StepRun"]):
    def save_if_owned(self, step: StepRun, owner: str) -> bool:
        """Write a finished step in one statement, only while its run is Running under
        ``owner``'s lease.

        This is the commit of every ``step.run``: one round trip instead of BEGIN, a row lock,
        the write and COMMIT. The condition is checked by the same statement that writes, so a
        cancel (or a lease takeover) committed before it makes it write nothing and return
        False. A cancel still in flight is ordered after it; the next commit or the run's end
        then sees it.
        """
        if step.pk is None:
            return _insert_if_owned(step, owner)
        # A retried step, or a long one the keeper recorded as Running: its row exists.
        fields = [f for f in StepRun._meta.concrete_fields if not f.primary_key]
        values = {f.attname: getattr(step, f.attname) for f in fields if f.attname != "run_id"}
        owned = FunctionRun.objects.filter(pk=step.run_id).owned_by(owner)
        return bool(self.filter(pk=step.pk, run__in=owned.values("pk")).update(**values))

    def close_interrupted(self, run_id: str, ended_at: datetime) -> int:
        """Give the unfinished steps of a run that just ended (a cancel) the run's end time,
        so the row says when the step stopped. Their status stays: the run's says why."""
        return self.filter(
            run_id=run_id, ended_at__isnull=True, status__in=UNFINISHED_STATUSES
        ).update(ended_at=ended_at)


_step_insert_cache: dict[tuple[str, bool], str] = {}


def _step_insert_sql(returning: bool) -> str:
    connection = database.connection()
    key = (connection.vendor, returning)
    if key not in _step_insert_cache:

        def q(name: str | None) -> str:
            return sql.quote(connection, name)

        fields = sql.insert_fields(StepRun)
        run_table = FunctionRun._meta
        _step_insert_cache[key] = (
            f"INSERT INTO {q(StepRun._meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
            f"SELECT {', '.join(['%s'] * len(fields))} WHERE EXISTS ("
            f"SELECT 1 FROM {q(run_table.db_table)} WHERE {q(run_table.pk.column)} = %s "
            f"AND {q('status')} = %s AND {q('lease_owner')} = %s)"
            + (" RETURNING id" if returning else "")
        )
    return _step_insert_cache[key]


def _insert_if_owned(step: StepRun, owner: str) -> bool:
    """Insert a new step's row only while its run is owned: the condition and the write are
    one hand-written statement (``INSERT ... SELECT ... WHERE EXISTS``)."""
    connection = database.connection()
    returning = connection.features.can_return_columns_from_insert
    values = [
        *sql.params(connection, step, sql.insert_fields(StepRun)),
        step.run_id,
        str(RunStatus.RUNNING),
        owner,
    ]
    # In autocommit (a worker) the statement is its own transaction; inside a caller's
    # transaction a savepoint keeps a conflict from aborting it.
    guard = database.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with guard, connection.cursor() as cursor:
            cursor.execute(_step_insert_sql(returning), values)
            row = cursor.fetchone() if returning else None
            written = cursor.rowcount == 1 or row is not None
    except IntegrityError:
        return False  # a worker that took over the run wrote this step first
    if row is not None:
        step.pk = row[0]
    return written


class StepRun(models.Model):
    """A memoized step. A Completed step is never executed again."""

    run = models.ForeignKey(
        FunctionRun, on_delete=models.CASCADE, related_name="steps", verbose_name=_("run")
    )
    step_id = models.CharField(
        _("step ID"), max_length=255, help_text=_("Unique within the run; repeats get `:n`.")
    )
    display_name = models.CharField(
        _("name"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("The step ID as written, when `step_id` is an SDK's hash of it."),
    )
    position = models.PositiveIntegerField(_("position"))
    kind = models.CharField(_("kind"), max_length=8, choices=StepKind.choices)
    status = models.CharField(_("status"), max_length=10, choices=StepStatus.choices)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    attempt_log = models.JSONField(
        _("attempt log"),
        default=list,
        help_text=_("One entry per attempt: start, end and error, for the timeline."),
    )
    output = models.JSONField(_("output"), null=True, blank=True)
    error = models.JSONField(_("error"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    wake_at = models.DateTimeField(
        _("wakes at"), null=True, blank=True, help_text=_("A sleep's end, a wait's timeout.")
    )
    # NULL for "none": see FunctionRun.cancel_event_id (the partial index SQLite can use).
    matched_event_id = models.CharField(  # noqa: DJ001
        _("matched event"),
        max_length=26,
        null=True,
        blank=True,
        help_text=_("Internal ID of the event a wait_for_event matched."),
    )

    objects = StepRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ("run", "position")
        constraints = (
            models.UniqueConstraint(fields=("run", "step_id"), name="inngest_step_unique_id"),
        )
        indexes = (
            # The event page: the waits an event resumed.
            models.Index(
                fields=("matched_event_id",),
                name="inngest_step_matched_event",
                condition=models.Q(matched_event_id__isnull=False),
            ),
        )

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def name(self) -> str:
        """What people call the step: its ID as written (an SDK step's ``step_id`` is a hash)."""
        return self.display_name or self.step_id
