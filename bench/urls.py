from __future__ import annotations

import os
from typing import Any

from django.urls import include, path

from bench.benchapp.views import raw_events

urlpatterns: list[Any] = [
    path("bench/raw-events", raw_events),
    path("", include("django_inngest.urls")),
]

if os.environ.get("BENCH_SDK_APP"):  # bench/sdk.py: an app written with the official SDK
    import inngest.django

    from bench.sdkapp import client, functions

    urlpatterns.append(inngest.django.serve(client, functions))
