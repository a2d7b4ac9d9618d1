"""The base class of every REST view: our auth, JSON only, our error shape, our envelope.

Each DRF policy is set on the class, so a project's ``REST_FRAMEWORK`` settings (default
authentication, permissions, throttles, renderers, pagination, exception handler, schema class)
leave this API's behaviour unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from django_inngest.api.auth import HasInngestPermission, SigningKeyAuthentication
from django_inngest.api.errors import exception_handler
from django_inngest.api.schema import view_schema
from django_inngest.api.unavailable import outage
from django_inngest.ids import is_ulid


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class InngestAPIView(APIView):
    # The bearer class comes first: its WWW-Authenticate challenge makes "no credentials" a 401.
    authentication_classes = (SigningKeyAuthentication, SessionAuthentication)
    permission_classes = (HasInngestPermission,)
    renderer_classes = (JSONRenderer,)
    parser_classes = (JSONParser,)
    throttle_classes = ()
    versioning_class = None
    metadata_class = None  # OPTIONS answers 405 rather than describing the view
    if view_schema is not None:
        schema = view_schema

    #: HTTP method → Django permissions a session user needs (the signing key needs none).
    required_permissions: ClassVar[dict[str, tuple[str, ...]]] = {}

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return exception_handler

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        if response.status_code < 500:
            outage.succeeded()  # ends a logged outage; otherwise one attribute read
        return super().finalize_response(request, response, *args, **kwargs)

    # -- helpers for subclasses --------------------------------------------------------------

    def query(
        self,
        request: Request,
        serializer_class: type[Serializer[Any]] | None,
        *,
        ignore_prefix: str | None = None,
    ) -> dict[str, Any]:
        """Validated query parameters; unknown or repeated ones are a 400, not silently ignored.

        Parameters starting with ``ignore_prefix`` are the view's own to check.
        """
        allowed = set(serializer_class().fields) if serializer_class else set()
        given = {
            key
            for key in request.query_params
            if not (ignore_prefix and key.startswith(ignore_prefix))
        }
        unknown = sorted(given - allowed)
        if unknown:
            expected = ", ".join(sorted(allowed)) or "none"
            raise exceptions.ValidationError(
                f"Unknown query parameter(s): {', '.join(unknown)} (expected: {expected})"
            )
        repeated = sorted(k for k, v in request.query_params.lists() if len(v) > 1 and k in given)
        if repeated:
            raise exceptions.ValidationError(
                f"Query parameter(s) given twice: {', '.join(repeated)}"
            )
        if serializer_class is None:
            return {}
        serializer = serializer_class(
            data={key: value for key, value in request.query_params.items() if key in given}
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    @staticmethod
    def ulid(value: str, message: str) -> str:
        """A path ULID, uppercased (ULIDs are case-insensitive).

        Anything else is a 404, as Inngest answers for an unknown run: no resource can have
        that ID, so it is not found rather than malformed.
        """
        normalised = value.upper()
        if not is_ulid(normalised):
            raise exceptions.NotFound(f"{message}: {value[:64]}")
        return normalised

    @staticmethod
    def wrap(data: Any, *, status: int = 200) -> Response:
        """Inngest's envelope: ``{"data": ..., "metadata": {"fetched_at", "cached_until"}}``."""
        metadata = {"fetched_at": now_rfc3339(), "cached_until": None}
        return Response({"data": data, "metadata": metadata}, status=status)

    @staticmethod
    def wrap_page(items: list[Any], next_cursor: str | None) -> Response:
        """The envelope of a list page; ``metadata.next_cursor`` is null on the last page."""
        metadata = {"fetched_at": now_rfc3339(), "cached_until": None, "next_cursor": next_cursor}
        return Response({"data": items, "metadata": metadata})
