"""OpenAPI description of the REST API (drf-spectacular), shared by every view.

drf-spectacular is optional at runtime: without it the decorators here do nothing and
``/v1/openapi.json`` answers 404, but the API itself works the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from rest_framework import serializers

F = TypeVar("F", bound=Callable[..., Any])

try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.utils import extend_schema as _extend_schema
except ImportError:  # pragma: no cover - exercised only without drf-spectacular
    HAS_SPECTACULAR = False
    view_schema: Any = None
else:
    HAS_SPECTACULAR = True
    # Set per view so the project's DEFAULT_SCHEMA_CLASS does not matter.
    view_schema = AutoSchema()

    class SigningKeyScheme(OpenApiAuthenticationExtension):
        target_class = "django_inngest.api.auth.SigningKeyAuthentication"
        name = "signingKey"

        def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
            return {
                "type": "http",
                "scheme": "bearer",
                "description": "The signing key, raw or hashed (SHA-256 of its hex body, "
                "keeping the `signkey-<env>-` prefix).",
            }


def extend_schema(**kwargs: Any) -> Callable[[F], F]:
    """``drf_spectacular.utils.extend_schema``, or a no-op without drf-spectacular."""
    if not HAS_SPECTACULAR:
        return lambda function: function

    def decorator(function: F) -> F:
        # extend_schema subclasses the function's ``schema`` or else the project's
        # DEFAULT_SCHEMA_CLASS (DRF's own, unless configured), which drf-spectacular cannot use.
        function.schema = AutoSchema  # type: ignore[attr-defined]
        return _extend_schema(**kwargs)(function)

    return decorator


class ErrorSerializer(serializers.Serializer[Any]):
    error = serializers.CharField(help_text="What is wrong, naming the field or parameter.")
    status = serializers.IntegerField(help_text="The HTTP status, repeated.")


class MetadataSerializer(serializers.Serializer[Any]):
    fetched_at = serializers.DateTimeField()
    cached_until = serializers.DateTimeField(allow_null=True)


class ListMetadataSerializer(MetadataSerializer):
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next page; null on the last page."
    )


def envelope(
    name: str, data: serializers.Field[Any, Any, Any, Any], *, paginated: bool = False
) -> type[serializers.Serializer[Any]]:
    """A ``{"data": ..., "metadata": ...}`` response component, named ``<name>Response``."""
    metadata = ListMetadataSerializer() if paginated else MetadataSerializer()
    return type(f"{name}Response", (serializers.Serializer,), {"data": data, "metadata": metadata})


def responses(
    success: type[serializers.Serializer[Any]], *errors: int, status: int = 200
) -> dict[int, Any]:
    """An operation's responses: ``success`` plus the shared error body for each status."""
    # 503: the database is unavailable (with Retry-After); see api.unavailable.
    return {status: success, **dict.fromkeys((401, 403, *errors, 503), ErrorSerializer)}
