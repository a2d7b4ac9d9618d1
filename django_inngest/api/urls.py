"""REST v1 routes, mounted by ``django_inngest.urls`` at ``v1/``. Paths are Inngest's."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path

from django_inngest.api.docs import BUNDLE, docs_view, redoc_bundle
from django_inngest.api.endpoints import api_patterns
from django_inngest.api.openapi import SCHEMA_FILENAME, openapi_view


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
