"""``/v1/runs/{run_id}``: read a run and its steps, cancel it, rerun it."""

from __future__ import annotations

from typing import Any, cast

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from django_inngest.api.base import InngestAPIView
from django_inngest.api.errors import Conflict
from django_inngest.api.schema import envelope, extend_schema, responses
from django_inngest.api.serializers import (
    CancelledRunSerializer,
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
            "is dropped."
        ),
        parameters=[CancelRunQuery],
        responses=responses(envelope("CancelledRun", CancelledRunSerializer()), 400, 404, 409),
    )
    def delete(self, request: Request, run_id: str) -> Response:
        params = self.query(request, CancelRunQuery)
        normalised = self.ulid(run_id, "Invalid run ID")
        try:
            cancel_run(normalised, source=CancelSource.API, reason=params["reason"])
        except RunNotFoundError as exc:
            raise exceptions.NotFound(str(exc)) from exc
        except RunAlreadyEndedError as exc:
            raise Conflict(str(exc)) from exc
        return self.wrap({"run_id": normalised, "status": RunStatus.CANCELLED.value})


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
