"""``GET /v1/openapi.json``: the OpenAPI 3 description of this API, readable without credentials.

It documents only this app's views, at the paths where the project mounted them, and works
whether or not ``drf_spectacular`` is in ``INSTALLED_APPS``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from django_inngest import __version__
from django_inngest.api.endpoints import api_patterns
from django_inngest.api.schema import HAS_SPECTACULAR

SCHEMA_FILENAME = "openapi.json"
SETTINGS = {
    "TITLE": "django_inngest REST API",
    "DESCRIPTION": (
        "Inngest's v1 REST API, served by django_inngest. Authenticate with "
        "`Authorization: Bearer <signing key>` (raw or hashed) or a Django session whose user "
        'has the model permissions. Errors are `{"error": ..., "status": N}`.'
    ),
    "VERSION": __version__,
    "COMPONENT_SPLIT_REQUEST": True,
    # A project's own drf-spectacular settings must not filter or rewrite this document.
    "AUTHENTICATION_WHITELIST": None,
    "RENDERER_WHITELIST": None,
    "PARSER_WHITELIST": None,
    "PREPROCESSING_HOOKS": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "django_inngest.api.openapi_strict.tighten",
    ],
    "SCHEMA_PATH_PREFIX": r"/.*v1",
}


def _mounted_patterns(request: HttpRequest) -> list[Any]:
    """Our URL patterns under the prefix the project mounted them at (e.g. ``v1/``)."""
    prefix = request.path_info.lstrip("/").removesuffix(SCHEMA_FILENAME)
    return [path(prefix, include(api_patterns()))]


if HAS_SPECTACULAR:
    from drf_spectacular.views import SpectacularJSONAPIView
    from rest_framework.permissions import AllowAny
    from rest_framework.request import Request
    from rest_framework.response import Response

    from django_inngest.api.errors import exception_handler

    class OpenApiView(SpectacularJSONAPIView):
        authentication_classes = ()
        permission_classes = (AllowAny,)
        throttle_classes = ()
        custom_settings = SETTINGS
        serve_public = True

        def get_exception_handler(self) -> Any:
            return exception_handler

        def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
            self.patterns = _mounted_patterns(request)
            return super().get(request, *args, **kwargs)

    openapi_view: Any = OpenApiView.as_view()
else:  # pragma: no cover - exercised only without drf-spectacular

    def openapi_view(request: HttpRequest) -> JsonResponse:
        message = "The OpenAPI schema needs drf-spectacular: pip install drf-spectacular"
        return JsonResponse({"error": message, "status": 404}, status=404)
