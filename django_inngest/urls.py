"""Mount with ``path("", include("django_inngest.urls"))``: Inngest's paths, ``/e/<key>`` and
``/v1/...``, and those official SDK apps call: ``/fn/register`` and ``/v0/runs/...``. They must
sit at the host root: the SDKs build them as absolute paths on their API origin."""

from __future__ import annotations

from django.urls import include, path

from django_inngest.api import sdk_register, sdk_state
from django_inngest.api.event_api import receive_events
from django_inngest.console.metrics import metrics_view

app_name = "django_inngest"

urlpatterns = [
    path("e/<str:event_key>", receive_events, name="event-api"),
    path("v1/", include("django_inngest.api.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("fn/register", sdk_register.register, name="sdk-register"),
    path("v0/runs/<str:run_id>/batch", sdk_state.run_batch, name="sdk-run-batch"),
    path("v0/runs/<str:run_id>/actions", sdk_state.run_actions, name="sdk-run-actions"),
]
