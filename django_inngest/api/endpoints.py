"""The documented REST v1 endpoints, Inngest's paths (mounted at ``v1/``). The OpenAPI view
describes exactly these; ``urls`` adds the schema, the docs page and the JSON 404."""

from __future__ import annotations

from typing import Any

from django.urls import path

from django_inngest.api import views_cancellations, views_events, views_runs


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
