"""The REST API's error shape, ``{"error": "<message>", "status": N}``, for every 4xx and 503.

Installed per view (``InngestAPIView.get_exception_handler``), so a project's
``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` does not change it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from django_inngest.api.unavailable import (
    MESSAGE,
    RETRY_AFTER_SECONDS,
    already_logged,
    is_database_unavailable,
    outage,
)


class Conflict(exceptions.APIException):
    """409: the request is valid but the resource's state forbids it (e.g. an ended run)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


def flatten(detail: Any, field: str = "") -> list[str]:
    """DRF error details (nested dicts and lists) as ``"field: message"`` strings."""
    if isinstance(detail, dict):
        messages: list[str] = []
        for key, value in detail.items():
            # "non_field_errors" names no field the client sent, so it is dropped.
            name = "" if key in ("non_field_errors", "detail") else str(key)
            messages.extend(flatten(value, f"{field}.{name}" if field and name else field or name))
        return messages
    if isinstance(detail, list):
        return [message for item in detail for message in flatten(item, field)]
    return [f"{field}: {detail}" if field else str(detail)]


def error_response(
    message: str, status_code: int, headers: dict[str, str] | None = None
) -> Response:
    return Response({"error": message, "status": status_code}, status=status_code, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler; anything it does not know stays a real 500 (a bug to fix),
    except a lost database, which is a 503 with ``Retry-After`` (``api.unavailable``)."""
    if is_database_unavailable(exc):
        request = context.get("request")
        outage.failed(exc, f"{request.method} {request.path}" if request else "the REST API")
        return already_logged(
            error_response(
                MESSAGE,
                status.HTTP_503_SERVICE_UNAVAILABLE,
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    # DRF's view has already turned a failed login into a 401 and set this header's value.
    if auth_header := getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        headers["Retry-After"] = str(int(wait))
    message = "; ".join(flatten(exc.detail)) or exc.default_detail
    return error_response(str(message), exc.status_code, headers)
