from __future__ import annotations

import inngest.django
from django.contrib import admin
from django.urls import include, path
from newsletter_sdk.functions import functions, inngest_client

urlpatterns = [
    path("admin/", admin.site.urls),
    # django-inngest: /e/<key>, /v1/..., /fn/register, /v0/... (at the root: SDKs expect it)
    path("", include("django_inngest.urls")),
    # An app written with the official SDK, served here too: /api/inngest
    inngest.django.serve(inngest_client, functions),
]
