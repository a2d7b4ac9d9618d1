"""Mount with ``path("", include("django_inngest.urls"))``: Inngest's paths, ``/e/<key>`` and ``/v1/...``."""

from __future__ import annotations

from django.urls import include, path

from django_inngest.api.event_api import receive_events
from django_inngest.metrics import metrics_view

app_name = "django_inngest"

urlpatterns = [
    path("e/<str:event_key>", receive_events, name="event-api"),
    path("v1/", include("django_inngest.api.urls")),
    path("metrics", metrics_view, name="metrics"),
]
