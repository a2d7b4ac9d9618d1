"""``GET /v1/docs``: the OpenAPI document rendered by Redoc, served offline.

Redoc's bundle comes from the ``drf-spectacular-sidecar`` package and is served by this view
from the package itself, so the page works with no CDN, on a closed network, and whether or not
the project lists the sidecar in ``INSTALLED_APPS`` or runs ``collectstatic``.
"""

from __future__ import annotations

from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.utils.html import format_html
from django.views.decorators.http import require_GET

from django_inngest.api.openapi import SCHEMA_FILENAME

BUNDLE = "redoc.standalone.js"


def _bundle_path() -> Path | None:
    try:
        import drf_spectacular_sidecar
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    path = (
        Path(drf_spectacular_sidecar.__file__).parent
        / "static/drf_spectacular_sidecar/redoc/bundles"
        / BUNDLE
    )
    return path if path.is_file() else None


@require_GET
def docs_view(request: HttpRequest) -> HttpResponse:
    # Relative URLs: the page works wherever the project mounted the API.
    html = format_html(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>django_inngest REST API</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<style>body {{ margin: 0; }}</style></head><body>"
        "<redoc spec-url='{}' hide-download-button='false'></redoc>"
        "<script src='{}'></script></body></html>",
        SCHEMA_FILENAME,
        f"docs/{BUNDLE}",
    )
    return HttpResponse(html)


@require_GET
def redoc_bundle(request: HttpRequest) -> FileResponse:
    path = _bundle_path()
    if path is None:
        raise Http404("Redoc's bundle is missing: pip install drf-spectacular-sidecar")
    response = FileResponse(path.open("rb"), content_type="text/javascript")
    response["Cache-Control"] = "public, max-age=86400"
    return response
