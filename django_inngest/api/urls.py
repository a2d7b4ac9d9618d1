"""REST v1 routes, mounted by ``django_inngest.urls`` at ``v1/``. Paths are Inngest's."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path

from django_inngest.api import views_cancellations, views_events, views_runs
from django_inngest.api.docs import BUNDLE, docs_view, redoc_bundle
from django_inngest.api.openapi import SCHEMA_FILENAME, openapi_view


def api_patterns() -> list[Any]:
    """The documented endpoints (the OpenAPI view describes exactly these)."""
    return [
        path("events", views_events.EventListView.as_view(), name="events"),
        path("events/<str:internal_id>", views_events.EventDetailView.as_view(), name="event"),
        path(
            "events/<str:internal_id>/runs",
            views_events.EventRunsView.as_view(),
            name="event-runs",
        ),
        path("runs/<str:run_id>", views_runs.RunDetailView.as_view(), name="run"),
        path("runs/<str:run_id>/steps", views_runs.RunStepsView.as_view(), name="run-steps"),
        path("runs/<str:run_id>/rerun", views_runs.RunRerunView.as_view(), name="run-rerun"),
        path(
            "cancellations",
            views_cancellations.CancellationListView.as_view(),
            name="cancellations",
        ),
        path(
            "cancellations/<str:cancellation_id>",
            views_cancellations.CancellationDetailView.as_view(),
            name="cancellation",
        ),
    ]


def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    # Keeps the API's JSON error shape for mistyped paths instead of Django's HTML 404 page.
    message = f"No such endpoint: {request.path}"
    return JsonResponse({"error": message, "status": 404}, status=404)


urlpatterns = [
    path(SCHEMA_FILENAME, openapi_view, name="openapi"),
    path("docs", docs_view, name="docs"),
    path(f"docs/{BUNDLE}", redoc_bundle, name="docs-bundle"),
    *api_patterns(),
    re_path(r"^(?P<rest>.*)$", not_found),
]
