"""Both halves of a sync: the PUT that asks an SDK app to sync, and our replies to its
``POST /fn/register``.

A sync starts with a ``PUT <serve url>`` (from anyone: our command, CI, curl). The SDK then
either POSTs its config to ``/fn/register`` and relays our reply to the PUT caller
(*out-of-band*), or, in cloud mode and asked with ``X-Inngest-Sync-Kind: in_band`` plus a valid
signature, returns its config in the PUT response itself (*in-band*; no call back into us, so no
self-call deadlock when the app and our server share one single-worker web server).

inngest-py 0.5.19 quirk: when ``/fn/register`` answers >= 400 it still answers the PUT with
**200** and our error body. So the PUT's status says little; ``interpret_sync_response`` reads
the body.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from django_inngest.sdk import signing
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.registration import AppSync, parse_in_band_payload
from django_inngest.sdk.wire import JSON, ServerKind

SERVER_KIND_HEADER = "X-Inngest-Server-Kind"
EXPECTED_SERVER_KIND_HEADER = "X-Inngest-Expected-Server-Kind"
SYNC_KIND_HEADER = "X-Inngest-Sync-Kind"


# --- our replies to POST /fn/register --------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, JSON]


def reply_synced(modified: bool, *, app_id: str | None = None, sync_id: str | None = None) -> Reply:
    """200 ``{"ok": true, "modified": ...}`` (Go adds ``app_id`` and ``sync_id``)."""
    body: dict[str, JSON] = {"ok": True, "modified": modified}
    if app_id is not None:
        body["app_id"] = app_id
    if sync_id is not None:
        body["sync_id"] = sync_id
    return Reply(200, body)


def reply_invalid(message: str) -> Reply:
    """400 ``{"error": ...}``: bad config, an unsupported option, a refused URL, a kind mismatch.
    The SDK logs ``registration_failed: <error>`` and relays the body to the PUT caller."""
    return Reply(400, {"error": message})


def reply_unauthorized(message: str = "Invalid or missing signing key") -> Reply:
    """401 with a *JSON* body: on plain text the SDK fails with "response is not valid JSON"
    instead of retrying with its fallback key."""
    return Reply(401, {"error": message})


def server_kind_mismatch(expected: str | None, ours: ServerKind) -> str | None:
    """The 400 message when the app expects another kind of server (``x-inngest-expected-
    server-kind``, sent only when the PUT carried ``X-Inngest-Server-Kind``), else None."""
    if expected is None or expected == ours:
        return None
    return f"this server is in {ours!r} mode but the app expects {expected!r}"


# --- the PUT that starts a sync --------------------------------------------------------------


@dataclass(frozen=True)
class SyncPut:
    url: str
    body: bytes
    headers: dict[str, str]


def build_sync_put(
    serve_url: str,
    signing_key: str,
    *,
    server_kind: ServerKind = "cloud",
    in_band: bool = False,
    deploy_id: str | None = None,
    timestamp: int | None = None,
) -> SyncPut:
    """``PUT <serve url>[?deployId=]`` with ``{"url": <serve url>}``, signed (0.5.x accepts
    unsigned PUTs, but 0.6 is expected to require them, and in-band sync always does).
    ``deploy_id`` comes back as ``?deployId=`` on ``/fn/register``: use it to correlate."""
    parts = urllib.parse.urlsplit(serve_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SdkProtocolError("serve_url", f"must be an absolute http(s) URL, got {serve_url!r}")
    url = serve_url
    if deploy_id:
        query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "deployId"]
        query.append(("deployId", deploy_id))
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    signed = signing.sign_payload({"url": serve_url}, signing_key, timestamp=timestamp)
    headers = {
        "Content-Type": "application/json",
        signing.SIGNATURE_HEADER: signed.signature,
        SERVER_KIND_HEADER: server_kind,
    }
    if in_band:
        headers[SYNC_KIND_HEADER] = "in_band"
    return SyncPut(url=url, body=signed.body, headers=headers)


@dataclass(frozen=True)
class SyncResult:
    """What a sync PUT achieved. ``config`` is set for a verified in-band answer, which the
    caller then stores exactly as a ``/fn/register`` body."""

    ok: bool
    modified: bool | None = None
    error: str | None = None
    config: AppSync | None = None


def interpret_sync_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    signing_keys: list[str] | None = None,
) -> SyncResult:
    """Read the SDK's answer to our PUT.

    Out-of-band: the body is our own ``/fn/register`` reply relayed (``ok``/``error``), even
    under a 200. In-band (``X-Inngest-Sync-Kind: in_band``): the body is the app's config and
    must carry a response signature by one of ``signing_keys``.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        excerpt = body[:300].decode("utf-8", errors="replace").strip()
        return SyncResult(ok=False, error=f"HTTP {status}, not JSON: {excerpt!r}")
    if not isinstance(payload, dict):
        return SyncResult(ok=False, error=f"HTTP {status}, not a JSON object")
    if lowered.get(SYNC_KIND_HEADER.lower()) == "in_band" and status == 200:
        signature = lowered.get(signing.SIGNATURE_HEADER.lower())
        if not signing.verify_response(body, signature, signing_keys or []):
            return SyncResult(ok=False, error="in-band sync answer is not signed with our key")
        try:
            return SyncResult(ok=True, config=parse_in_band_payload(payload))
        except SdkProtocolError as invalid:
            return SyncResult(ok=False, error=f"in-band config: {invalid}")
    error = payload.get("error")
    if isinstance(error, str) and error:
        return SyncResult(ok=False, error=error)
    if status >= 400 or payload.get("ok") is not True:
        # The SDK's own refusals: {"code": "server_kind_mismatch", "message": ...}, 401
        # {"message": "Unauthorized"}, 500 {"code", "message", "name"}.
        message = payload.get("message")
        detail = message if isinstance(message, str) else json.dumps(payload)[:300]
        code = payload.get("code")
        prefix = f"{code}: " if isinstance(code, str) else ""
        return SyncResult(ok=False, error=f"HTTP {status}: {prefix}{detail}")
    modified = payload.get("modified")
    return SyncResult(ok=True, modified=modified if isinstance(modified, bool) else None)
