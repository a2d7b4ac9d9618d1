"""Wire shapes of the REST API: resources out, query strings and bodies in.

Output field names follow Inngest's v1 API (snake_case, as OSS Inngest emits them). Timestamps
are RFC 3339 in UTC whatever the project's ``REST_FRAMEWORK`` or ``TIME_ZONE`` settings say.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from django.utils.dateparse import parse_datetime
from rest_framework import ISO_8601, serializers

from django_inngest.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from django_inngest.console import step_outcome
from django_inngest.engine.cancellation import MAX_REASON_LENGTH
from django_inngest.models import (
    Cancellation,
    CancelSource,
    Event,
    FunctionRun,
    RunStatus,
    StepKind,
    StepRun,
    StepStatus,
    WaitKind,
)


class Rfc3339Field(serializers.DateTimeField):
    """An RFC 3339 timestamp with an offset; output is always UTC (``...Z``)."""

    default_error_messages = {
        "invalid": "must be an RFC 3339 timestamp with a timezone, e.g. 2024-01-21T18:23:12Z",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format=ISO_8601, default_timezone=UTC, **kwargs)

    def to_internal_value(self, value: Any) -> datetime:
        # Stricter than DRF's parser, which takes naive times and reads them in TIME_ZONE.
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            parsed = parse_datetime(value.strip())
            if parsed is None or parsed.tzinfo is None:
                self.fail("invalid")
            # Year 1 at +14:00 (or 9999 at -12:00) has no UTC equivalent datetime can hold.
            return parsed.astimezone(UTC)
        except (ValueError, OverflowError):  # e.g. month 13
            self.fail("invalid")


class StrictCharField(serializers.CharField):
    """A JSON string; DRF's CharField would turn ``5`` or ``true`` into text silently.

    DRF already refuses NUL characters; lone surrogates (``"\\ud800"`` in JSON) are refused
    here, because no database driver can encode them.
    """

    default_error_messages = {
        "not_a_string": "must be a string, got {kind}",
        "surrogate": "must not contain unpaired surrogate characters",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        try:
            data.encode()
        except UnicodeEncodeError:
            self.fail("surrogate")
        return super().to_internal_value(data)


class NullableText(serializers.CharField):
    """Optional text shown as ``null`` when the model stores an empty string."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, read_only=True, **kwargs)

    def to_representation(self, value: Any) -> str | None:  # type: ignore[override]
        return str(value) if value else None


def serialize_many(serializer_class: type[serializers.Serializer[Any]], items: Any) -> list[Any]:
    """``serializer_class(items, many=True).data``, which the type stubs cannot express."""
    return list(serializer_class(instance=cast(Any, items), many=True).data)


# -- resources -------------------------------------------------------------------------------


class EventSerializer(serializers.Serializer[Event]):
    internal_id = serializers.CharField(read_only=True, help_text="Internal event ID (a ULID).")
    id = serializers.SerializerMethodField(
        help_text="The sender's `id`, or the internal ID when none was sent."
    )
    name = serializers.CharField(read_only=True)
    # DRF's metaclass moves declared fields off the class, so this does not hide
    # ``Serializer.data``; the stubs cannot know that.
    data = serializers.DictField(read_only=True)  # type: ignore[assignment]
    user = serializers.DictField(read_only=True)
    ts = serializers.IntegerField(read_only=True, help_text="Event time, Unix milliseconds.")
    v = serializers.CharField(read_only=True, help_text="Event version; empty when not sent.")
    received_at = Rfc3339Field(read_only=True)

    def get_id(self, event: Event) -> str:
        return str(event.as_payload()["id"])


class RunSerializer(serializers.Serializer[FunctionRun]):
    run_id = serializers.CharField(read_only=True)
    function_id = serializers.CharField(read_only=True, help_text="`<app_id>-<fn_id>`.")
    status = serializers.ChoiceField(choices=RunStatus.choices, read_only=True)
    run_started_at = Rfc3339Field(
        source="created_at", read_only=True, help_text="When the run was created (its ULID time)."
    )
    ended_at = Rfc3339Field(read_only=True, allow_null=True)
    output = serializers.JSONField(read_only=True, allow_null=True)
    event_id = serializers.CharField(read_only=True, help_text="Internal ID of the trigger.")
    # Additions to Inngest's shape:
    first_executed_at = Rfc3339Field(
        source="started_at",
        read_only=True,
        allow_null=True,
        help_text="First step or handler start.",
    )
    error = serializers.JSONField(read_only=True, allow_null=True)
    wait_kind = serializers.ChoiceField(
        choices=[c for c in WaitKind.values if c], read_only=True, allow_null=True
    )
    cancel_source = serializers.ChoiceField(
        choices=CancelSource.values, read_only=True, allow_null=True
    )
    cancel_reason = NullableText(help_text="Why, in the canceller's words.")
    cancel_actor = NullableText(
        help_text='Who cancelled: the Django user, "signing key", the CLI\'s OS user, or '
        '"event <internal id>" for a cancel_on event.'
    )
    cancel_event_id = NullableText(
        help_text="Internal ID of the cancel_on event that cancelled it."
    )
    cancellation_id = serializers.CharField(read_only=True, allow_null=True)
    original_run_id = NullableText(help_text="Set on reruns: the run this one re-ran.")
    parent_run_id = serializers.CharField(
        read_only=True, allow_null=True, help_text="Set on runs started by `step.invoke`."
    )
    waiting = serializers.SerializerMethodField(
        help_text="Why an active run is held back by flow control, e.g. "
        "'waiting for a concurrency slot (key acme)', 'throttled until ...', "
        "'debouncing until ...', 'batching (3 of 5) until ...', 'scheduled for ...'; else null."
    )
    cron = NullableText(help_text="The cron expression of a run a schedule started.")

    def get_waiting(self, instance: FunctionRun) -> str | None:
        return instance.waiting_reason() or None

    def to_representation(self, instance: FunctionRun) -> dict[str, Any]:
        data = super().to_representation(instance)
        # Empty strings in the model mean "none".
        data["wait_kind"] = instance.wait_kind or None
        data["cancel_source"] = instance.cancel_source or None
        return data


#: The engine's step statuses, plus how a step ended when its row alone does not say it.
STEP_STATUSES = [
    *StepStatus.values,
    step_outcome.CANCELLED,
    step_outcome.TIMED_OUT,
    step_outcome.INTERRUPTED,
]


class StepSerializer(serializers.Serializer[StepRun]):
    """A step as it ended: a step that the run's cancel interrupted is ``Cancelled`` (its
    ``ended_at`` the run's), one the run's failure cut short ``Interrupted``, and a
    ``wait_for_event`` that timed out ``TimedOut``. Pass the run as ``context["run"]``."""

    step_id = serializers.CharField(read_only=True)
    name = serializers.CharField(
        read_only=True,
        help_text="The step ID as written; a step of an SDK-served function has its hash "
        "as `step_id`.",
    )
    position = serializers.IntegerField(read_only=True, min_value=0)
    kind = serializers.ChoiceField(choices=StepKind.choices, read_only=True)
    status = serializers.ChoiceField(
        choices=STEP_STATUSES,
        read_only=True,
        help_text="`Cancelled`: the run was cancelled while the step slept, waited, ran or "
        "waited to retry; `Interrupted`: the run failed meanwhile; `TimedOut`: a "
        "`wait_for_event` whose timeout passed (its output is null).",
    )
    attempts = serializers.IntegerField(read_only=True, min_value=0)
    started_at = Rfc3339Field(read_only=True)
    ended_at = Rfc3339Field(
        read_only=True, allow_null=True, help_text="For an interrupted step, the run's end."
    )
    output = serializers.JSONField(read_only=True, allow_null=True)
    error = serializers.JSONField(read_only=True, allow_null=True)
    wake_at = Rfc3339Field(read_only=True, allow_null=True)
    matched_event_id = NullableText(
        help_text="Internal ID of the event a `wait_for_event` matched (see `/v1/events/{id}`)."
    )
    attempt_log = serializers.ListField(child=serializers.DictField(), read_only=True)

    def to_representation(self, instance: StepRun) -> dict[str, Any]:
        data = super().to_representation(instance)
        run = self.context.get("run") or instance.run
        outcome = step_outcome.step_outcome(run, instance)
        data["status"] = outcome.status
        if outcome.ended_at is not None and instance.ended_at is None:
            data["ended_at"] = self.fields["ended_at"].to_representation(outcome.ended_at)
        return data


#: Inngest's ``cause`` for each of our sources (Inngest itself only has API and Dashboard).
_CAUSES: dict[str, str] = {CancelSource.API: "API", CancelSource.ADMIN: "Dashboard"}


class CancellationSerializer(serializers.Serializer[Cancellation]):
    id = serializers.CharField(read_only=True)
    created_at = Rfc3339Field(read_only=True)
    name = serializers.CharField(read_only=True)
    app_id = serializers.CharField(read_only=True)
    function_id = serializers.CharField(
        read_only=True,
        help_text="The function's full ID, `<app_id>-<fn_id>`, as on runs and system events.",
    )
    started_after = Rfc3339Field(read_only=True, allow_null=True)
    started_before = Rfc3339Field(read_only=True)
    kind = serializers.SerializerMethodField()
    cause = serializers.SerializerMethodField()
    cancelled_runs = serializers.SerializerMethodField(
        help_text="Runs this cancellation has cancelled so far."
    )
    reason = NullableText(help_text="Recorded on every run it cancels.")
    actor = NullableText(help_text='Who created it: the Django user, or "signing key".')

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # "if" is a Python keyword, so it cannot be declared as a class attribute.
        fields["if"] = serializers.CharField(
            source="if_exp", read_only=True, allow_null=True, help_text="CEL over `event`."
        )
        return fields

    def to_representation(self, instance: Cancellation) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["if"] = instance.if_exp or None
        return data

    def get_kind(self, cancellation: Cancellation) -> str:
        return "bulk_run"

    def get_cause(self, cancellation: Cancellation) -> str:
        return _CAUSES.get(cancellation.source, str(cancellation.source).upper())

    def get_cancelled_runs(self, cancellation: Cancellation) -> int:
        annotated = getattr(cancellation, "cancelled_count", None)
        return annotated if annotated is not None else cancellation.runs.count()


class CancelledRunSerializer(serializers.Serializer[Any]):
    run_id = serializers.CharField()
    status = serializers.ChoiceField(choices=[RunStatus.CANCELLED.value])


class RerunSerializer(serializers.Serializer[Any]):
    run_id = serializers.CharField(help_text="The new run's ID.")


class OkSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()


# -- input -----------------------------------------------------------------------------------


class LimitCursorQuery(serializers.Serializer[Any]):
    cursor = serializers.CharField(
        required=False, max_length=512, help_text="`metadata.next_cursor` of the previous page."
    )
    limit = serializers.IntegerField(
        required=False, default=DEFAULT_LIMIT, min_value=1, max_value=MAX_LIMIT
    )


class EventListQuery(LimitCursorQuery):
    name = serializers.CharField(required=False, max_length=255, help_text="Exact event name.")
    received_after = Rfc3339Field(required=False, help_text="Only events received after this.")
    received_before = Rfc3339Field(required=False, help_text="Only events received before this.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("received_after"), attrs.get("received_before")
        if after and before and after >= before:
            raise serializers.ValidationError(
                {"received_after": "must be earlier than received_before"}
            )
        return attrs


class CancelRunQuery(serializers.Serializer[Any]):
    reason = serializers.CharField(
        required=False,
        default="",
        max_length=MAX_REASON_LENGTH,
        help_text="Why; recorded on the run (or send it in the JSON body).",
    )


class CancelRunBody(serializers.Serializer[Any]):
    """Optional JSON body of ``DELETE /v1/runs/{run_id}``."""

    reason = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=MAX_REASON_LENGTH,
        help_text="Why; recorded on the run, in the signal and in `inngest/function.cancelled`.",
    )


class CancellationCreateSerializer(serializers.Serializer[Any]):
    """Body of ``POST /v1/cancellations``, as Inngest's ``CreateCancellationBody``."""

    app_id = StrictCharField(max_length=255)
    function_id = StrictCharField(
        max_length=255,
        help_text="The function's full ID (`<app_id>-<fn_id>`), or its local ID (`fn_id`).",
    )
    started_after = Rfc3339Field(required=False, allow_null=True)
    started_before = Rfc3339Field(help_text="At most 5 seconds in the future.")
    name = StrictCharField(required=False, default="", allow_blank=True, max_length=255)
    reason = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=MAX_REASON_LENGTH,
        help_text="Why; recorded on every run it cancels.",
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        fields["if"] = StrictCharField(
            required=False,
            allow_null=True,
            allow_blank=True,
            max_length=4096,
            help_text="Optional CEL expression over `event` (the run's triggering event).",
        )
        return fields
