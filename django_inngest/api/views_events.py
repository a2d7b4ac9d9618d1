"""``/v1/events``: stored events and the runs each one started."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from django_inngest.api.base import InngestAPIView
from django_inngest.api.pagination import paginate
from django_inngest.api.schema import envelope, extend_schema, responses
from django_inngest.api.serializers import (
    EventListQuery,
    EventSerializer,
    RunSerializer,
    serialize_many,
)
from django_inngest.console.payload_search import (
    MAX_TERMS,
    PayloadSearchError,
    PayloadTerm,
    parse_term,
    payload_q,
)
from django_inngest.models import Event

#: Query parameters naming a path in the event payload: ``?data.importId=abc``.
PAYLOAD_PREFIX = "data."

VIEW_EVENT = "django_inngest.view_event"
VIEW_RUN = "django_inngest.view_functionrun"


def get_event(view: InngestAPIView, internal_id: str) -> Event:
    event_id = view.ulid(internal_id, "Invalid event ID")
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        raise exceptions.NotFound(f"Event not found: {event_id}")
    return event


class EventListView(InngestAPIView):
    required_permissions = {"GET": (VIEW_EVENT,)}

    @extend_schema(
        operation_id="listEvents",
        summary="List events, newest first",
        description=(
            "Filter by a value inside the payload with `data.<path>=<value>` parameters, "
            "e.g. `?data.importId=abc` or `?data.user.id=42` (up to 5; all must match). A value "
            "that reads as a JSON number, `true`, `false` or `null` matches that literal or the "
            'same text as a string; quote it (`"42"`) for the string only. On PostgreSQL this '
            "is a `data @>` containment search served by a GIN index."
        ),
        parameters=[EventListQuery],
        responses=responses(envelope("EventList", EventSerializer(many=True), paginated=True), 400),
    )
    def get(self, request: Request) -> Response:
        payload_terms = self.payload_terms(request)
        params = self.query(request, EventListQuery, ignore_prefix=PAYLOAD_PREFIX)
        events = Event.objects.all()
        if payload_terms:
            events = events.filter(payload_q(payload_terms, field="data"))
        if "name" in params:
            events = events.filter(name=params["name"])
        if "received_after" in params:
            events = events.filter(received_at__gt=params["received_after"])
        if "received_before" in params:
            events = events.filter(received_at__lt=params["received_before"])
        page = paginate(
            events, time_field="received_at", limit=params["limit"], cursor=params.get("cursor")
        )
        return self.wrap_page(serialize_many(EventSerializer, page.items), page.next_cursor)

    @staticmethod
    def payload_terms(request: Request) -> list[PayloadTerm]:
        terms = []
        for key, values in request.query_params.lists():
            if not key.startswith(PAYLOAD_PREFIX):
                continue
            if len(values) > 1:
                raise exceptions.ValidationError(f"Query parameter given twice: {key}")
            try:
                terms.append(parse_term(f"{key}={values[0]}"))
            except PayloadSearchError as exc:
                raise exceptions.ValidationError({key: str(exc)}) from None
        if len(terms) > MAX_TERMS:
            raise exceptions.ValidationError(f"At most {MAX_TERMS} data.<path> parameters")
        return terms


class EventDetailView(InngestAPIView):
    required_permissions = {"GET": (VIEW_EVENT,)}

    @extend_schema(
        operation_id="getEvent",
        summary="One event by internal ID",
        responses=responses(envelope("EventDetail", EventSerializer()), 400, 404),
    )
    def get(self, request: Request, internal_id: str) -> Response:
        self.query(request, None)
        return self.wrap(EventSerializer(get_event(self, internal_id)).data)


class EventRunsView(InngestAPIView):
    required_permissions = {"GET": (VIEW_EVENT, VIEW_RUN)}

    @extend_schema(
        operation_id="listEventRuns",
        summary="Runs the event started",
        description="Not paginated, as on Inngest: an event starts one run per triggered function.",
        responses=responses(envelope("EventRuns", RunSerializer(many=True)), 400, 404),
    )
    def get(self, request: Request, internal_id: str) -> Response:
        self.query(request, None)
        event = get_event(self, internal_id)
        runs = event.runs.order_by("created_at", "run_id")
        return self.wrap(serialize_many(RunSerializer, runs))
