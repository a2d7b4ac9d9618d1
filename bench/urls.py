from __future__ import annotations

from django.urls import include, path

from bench.benchapp.views import raw_events

urlpatterns = [
    path("bench/raw-events", raw_events),
    path("", include("django_inngest.urls")),
]
