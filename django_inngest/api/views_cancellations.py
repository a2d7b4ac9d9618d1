"""``/v1/cancellations``: Inngest's bulk cancellation (cancel a function's runs in a window)."""

from __future__ import annotations

from django.db.models import Count
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from django_inngest.api.auth import request_actor
from django_inngest.api.base import InngestAPIView
from django_inngest.api.pagination import paginate
from django_inngest.api.schema import envelope, extend_schema, responses
from django_inngest.api.serializers import (
    CancellationCreateSerializer,
    CancellationSerializer,
    LimitCursorQuery,
    OkSerializer,
    serialize_many,
)
from django_inngest.engine.cancellation import BulkCancellationError, create_bulk_cancellation
from django_inngest.models import Cancellation, CancelSource


class CancellationListView(InngestAPIView):
    required_permissions = {
        "GET": ("django_inngest.view_cancellation",),
        "POST": ("django_inngest.cancel_functionrun",),
    }

    @extend_schema(
        operation_id="listCancellations",
        summary="List bulk cancellations, newest first",
        parameters=[LimitCursorQuery],
        responses=responses(
            envelope("CancellationList", CancellationSerializer(many=True), paginated=True), 400
        ),
    )
    def get(self, request: Request) -> Response:
        params = self.query(request, LimitCursorQuery)
        records = Cancellation.objects.select_related("function").annotate(
            cancelled_count=Count("runs")
        )
        page = paginate(
            records, time_field="created_at", limit=params["limit"], cursor=params.get("cursor")
        )
        return self.wrap_page(serialize_many(CancellationSerializer, page.items), page.next_cursor)

    @extend_schema(
        operation_id="createCancellation",
        summary="Cancel a function's runs created in a time window",
        description=(
            "Validated as Inngest does: `started_before` at most 5 s in the future, "
            "`started_after` earlier than it, `if` a CEL expression over `event`. Matching active "
            "runs are cancelled now; runs created later inside the window are cancelled before "
            "their next step."
        ),
        request=CancellationCreateSerializer,
        responses=responses(envelope("CancellationCreated", CancellationSerializer()), 400),
    )
    def post(self, request: Request) -> Response:
        self.query(request, None)
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError("The body must be a JSON object.")
        body = CancellationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = body.validated_data
        try:
            record, _cancelled = create_bulk_cancellation(
                app_id=fields["app_id"],
                function_id=fields["function_id"],
                started_before=fields["started_before"],
                started_after=fields.get("started_after"),
                if_exp=fields.get("if") or None,
                name=fields["name"],
                source=CancelSource.API,
                reason=fields["reason"],
                actor=request_actor(request),
            )
        except BulkCancellationError as exc:
            raise exceptions.ValidationError(str(exc)) from exc
        return self.wrap(CancellationSerializer(record).data)


class CancellationDetailView(InngestAPIView):
    required_permissions = {"DELETE": ("django_inngest.delete_cancellation",)}

    @extend_schema(
        operation_id="deleteCancellation",
        summary="Delete a bulk cancellation",
        description=(
            "It stops cancelling runs at once. Runs it already cancelled stay cancelled and keep "
            "their history."
        ),
        responses=responses(envelope("CancellationDeleted", OkSerializer()), 400, 404),
    )
    def delete(self, request: Request, cancellation_id: str) -> Response:
        self.query(request, None)
        normalised = self.ulid(cancellation_id, "Invalid cancellation ID")
        deleted, _ = Cancellation.objects.filter(pk=normalised).delete()
        if not deleted:
            raise exceptions.NotFound(f"Cancellation not found: {normalised}")
        return self.wrap({"ok": True})
