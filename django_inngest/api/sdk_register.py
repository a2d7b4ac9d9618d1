"""``POST /fn/register``: an app written with the official SDK tells us its functions.

The SDK sends it when someone PUTs its serve URL (``manage.py inngest_sync_app``, the admin,
curl), authenticated with ``Authorization: Bearer <sha256 of the signing key>``. Replies are
Inngest's: ``200 {"ok": true, "modified": ...}``, ``400 {"error": ...}`` naming what is wrong,
and ``401`` with a JSON body (on plain text the SDK would not retry with its fallback key).
The SDK relays our reply to whoever sent the PUT.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from django_inngest.sdk import signing
from django_inngest.sdk import sync as sdk_sync
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.registration import parse_register_body
from django_inngest.sdk_apps.http import is_dev, server_kind, signing_keys
from django_inngest.sdk_apps.sync import SyncRefused, store_sync

logger = logging.getLogger(__name__)

#: A sync lists every function with its triggers; 10 MiB is far beyond any real app. Read from
#: the stream: Django's DATA_UPLOAD_MAX_MEMORY_SIZE is meant for forms.
MAX_BODY_BYTES = 10 * 1024 * 1024


def _reply(reply: sdk_sync.Reply) -> JsonResponse:
    return JsonResponse(reply.body, status=reply.status)


def bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_authenticated(request: HttpRequest) -> bool:
    """The SDK's Bearer: the signing key (or its fallback), raw or hashed. Dev mode, like the
    Inngest Dev Server, lets anyone in."""
    if is_dev():
        return True
    token = bearer_token(request)
    return token is not None and signing.bearer_token_matches(token, signing_keys())


@csrf_exempt  # the Bearer key is the credential; there is no cookie session to forge
def register(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = JsonResponse({"error": f"method {request.method} not allowed"}, status=405)
        response["Allow"] = "POST"
        return response
    if not is_authenticated(request):
        if not signing_keys():
            logger.warning("SDK sync refused: DJANGO_INNGEST_SIGNING_KEY is not set")
        return _reply(sdk_sync.reply_unauthorized())
    expected = request.headers.get(sdk_sync.EXPECTED_SERVER_KIND_HEADER)
    mismatch = sdk_sync.server_kind_mismatch(expected, server_kind())
    if mismatch:
        return _reply(sdk_sync.reply_invalid(mismatch))
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _reply(sdk_sync.Reply(413, {"error": f"body over {MAX_BODY_BYTES} bytes"}))
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _reply(sdk_sync.Reply(413, {"error": f"body over {MAX_BODY_BYTES} bytes"}))
    try:
        app = parse_register_body(body)
        stored = store_sync(app)
    except (SdkProtocolError, SyncRefused) as refused:
        logger.warning("SDK sync refused: %s", refused)
        return _reply(sdk_sync.reply_invalid(str(refused)))
    return _reply(
        sdk_sync.reply_synced(
            stored.modified, app_id=stored.app.app_id, sync_id=stored.app.generation
        )
    )
