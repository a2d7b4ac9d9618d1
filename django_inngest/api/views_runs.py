"""``/v1/runs/{run_id}``: read a run and its steps, cancel it, rerun it."""

from __future__ import annotations

from typing import Any, cast

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from django_inngest.api.auth import request_actor
from django_inngest.api.base import InngestAPIView
from django_inngest.api.errors import Conflict
from django_inngest.api.schema import envelope, extend_schema, responses
from django_inngest.api.serializers import (
    CancelledRunSerializer,
    CancelRunBody,
    CancelRunQuery,
    RerunSerializer,
    RunSerializer,
    StepSerializer,
)
from django_inngest.engine.cancellation import RunAlreadyEndedError, RunNotFoundError, cancel_run
from django_inngest.exceptions import InngestError
from django_inngest.ingest import runs
from django_inngest.models import CancelSource, FunctionRun, RunStatus

VIEW_RUN = "django_inngest.view_functionrun"


def get_run(view: InngestAPIView, run_id: str) -> FunctionRun:
    normalised = view.ulid(run_id, "Invalid run ID")
    run = FunctionRun.objects.filter(pk=normalised).first()
    if run is None:
        raise exceptions.NotFound(f"Unable to load function run: {normalised}")
    return run


class RunDetailView(InngestAPIView):
    required_permissions = {
        "GET": (VIEW_RUN,),
        "DELETE": ("django_inngest.cancel_functionrun",),
    }

    @extend_schema(
        operation_id="getRun",
        summary="One run, with its output",
        responses=responses(envelope("RunDetail", RunSerializer()), 400, 404),
    )
    def get(self, request: Request, run_id: str) -> Response:
        self.query(request, None)
        return self.wrap(RunSerializer(get_run(self, run_id)).data)

    @extend_schema(
        operation_id="cancelRun",
        summary="Cancel a run",
        description=(
            "Idempotent: cancelling a cancelled run succeeds again. A run that already completed "
            "or failed gives 409. Inngest OSS answers an empty 200; this returns the run's ID and "
            "status. No further step starts; a step already executing finishes, but its result "
            "is dropped. An optional `reason` (query parameter, or a JSON body "
            '`{"reason": "..."}`) is recorded on the run with the caller (a user name, or '
            '"signing key").'
        ),
        parameters=[CancelRunQuery],
        responses=responses(envelope("CancelledRun", CancelledRunSerializer()), 400, 404, 409),
    )
    def delete(self, request: Request, run_id: str) -> Response:
        params = self.query(request, CancelRunQuery)
        reason = self.body_reason(request, params["reason"])
        normalised = self.ulid(run_id, "Invalid run ID")
        try:
            cancel_run(
                normalised, source=CancelSource.API, reason=reason, actor=request_actor(request)
            )
        except RunNotFoundError as exc:
            raise exceptions.NotFound(str(exc)) from exc
        except RunAlreadyEndedError as exc:
            raise Conflict(str(exc)) from exc
        return self.wrap({"run_id": normalised, "status": RunStatus.CANCELLED.value})

    def body_reason(self, request: Request, from_query: str) -> str:
        """The reason from an optional JSON body; given in both places, they must agree."""
        if not request.data:
            return from_query
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError('The body must be a JSON object: {"reason": "..."}')
        unknown = sorted(set(request.data) - {"reason"})
        if unknown:
            raise exceptions.ValidationError(
                f"Unknown body field(s): {', '.join(unknown)} (expected: reason)"
            )
        body = CancelRunBody(data=request.data)
        body.is_valid(raise_exception=True)
        reason: str = body.validated_data["reason"]
        if from_query and reason and reason != from_query:
            raise exceptions.ValidationError(
                "reason: given in the query and in the body with different values"
            )
        return reason or from_query


class RunStepsView(InngestAPIView):
    required_permissions = {"GET": (VIEW_RUN, "django_inngest.view_steprun")}

    @extend_schema(
        operation_id="listRunSteps",
        summary="A run's memoized steps, in order",
        description="Not part of Inngest's v1 API.",
        responses=responses(envelope("RunSteps", StepSerializer(many=True)), 400, 404),
    )
    def get(self, request: Request, run_id: str) -> Response:
        self.query(request, None)
        run = get_run(self, run_id)
        steps = StepSerializer(
            instance=cast(Any, list(run.steps.order_by("position"))),
            many=True,
            context={"run": run},
        )
        return self.wrap(list(steps.data))


class RunRerunView(InngestAPIView):
    required_permissions = {"POST": ("django_inngest.rerun_functionrun",)}

    @extend_schema(
        operation_id="rerunRun",
        summary="Start a new run from the same triggering event",
        description=(
            "As Inngest's v2 `POST /runs/{run_id}/rerun` (without `fromStep`). The new run's "
            "`original_run_id` is this run. 409 when the function is no longer defined in code."
        ),
        request=None,
        responses=responses(envelope("Rerun", RerunSerializer()), 400, 404, 409),
    )
    def post(self, request: Request, run_id: str) -> Response:
        self.query(request, None)
        run = get_run(self, run_id)
        try:
            new_run = runs.rerun(run)
        except InngestError as exc:
            raise Conflict(str(exc)) from exc
        return self.wrap({"run_id": new_run.run_id})
