"""Who may call the REST API: the signing key as a Bearer token, or a Django user with permissions.

* ``Authorization: Bearer <signing key>``: the raw ``DJANGO_INNGEST_SIGNING_KEY`` or its hashed
  form (see ``keys.hashed_signing_key_forms``) grants every endpoint, as on Inngest. An empty
  setting disables bearer auth.
* A logged-in Django user (session) needs the model permissions each view lists in
  ``required_permissions``; unsafe methods also need a CSRF token, as usual with DRF sessions.

No credentials (or bad ones) give 401; a user without the permission gets 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from django_inngest.api.keys import signing_key_is_valid
from django_inngest.engine.cancellation import SIGNING_KEY_ACTOR

if TYPE_CHECKING:
    from rest_framework.views import APIView


@dataclass(frozen=True)
class SigningKeyAuth:
    """``request.auth`` when the caller presented the signing key. It holds no secret."""

    scheme: str = "signing-key"


class SigningKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <signing key>``, raw or hashed, compared in constant time."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AnonymousUser, SigningKeyAuth] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: let session authentication try
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: expected 'Bearer <signing key>'"
            )
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid signing key") from None
        # A wrong key fails outright instead of falling back to a session: explicit credentials
        # that do not work are an error the caller should see.
        if not signing_key_is_valid(token):
            raise exceptions.AuthenticationFailed("Invalid signing key")
        return AnonymousUser(), SigningKeyAuth()

    def authenticate_header(self, request: Request) -> str:
        # Listed first, this makes DRF answer 401 (not 403) when no credentials are given.
        return f'{self.keyword} realm="django_inngest"'


def request_actor(request: Request) -> str:
    """Who is calling, as recorded on what they cancel: "signing key", or the user's name."""
    if isinstance(request.auth, SigningKeyAuth):
        return SIGNING_KEY_ACTOR
    user: Any = request.user
    return str(user.get_username()) if user and user.is_authenticated else ""


class HasInngestPermission(permissions.BasePermission):
    """Signing key: allowed. User: needs every permission the view lists for the method."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, SigningKeyAuth):
            return True
        user: Any = request.user
        if not (user and user.is_authenticated):
            # DRF turns this into 401 because no authenticator succeeded.
            return False
        required: dict[str, tuple[str, ...]] = getattr(view, "required_permissions", {})
        method = "GET" if request.method == "HEAD" else request.method
        if method not in required:
            return True  # the view answers 405 for methods it does not implement
        needed = required[method]
        if user.has_perms(needed):
            return True
        self.message = "Permission required: " + ", ".join(needed)
        return False
