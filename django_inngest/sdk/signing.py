"""Signing keys and signatures between our server and an app using the official SDK.

Three different uses of one signing key ``signkey-<env>-<hex>``, and they differ on purpose:

- **Request signature** (us -> SDK, ``X-Inngest-Signature: t=<unix s>&s=<hex>``): HMAC-SHA256
  keyed with the key *minus its prefix, as UTF-8 text* (not hex-decoded), over the JCS
  (RFC 8785) form of the body followed by ``t``. The SDK re-canonicalises what it receives before
  checking, so we must send exactly the JCS bytes we signed.
- **Response signature** (SDK -> us): the same HMAC over the *raw* response body plus ``t``, with
  no JCS, keyed by whichever of the app's keys verified our request.
- **Bearer token** (SDK -> us on ``/fn/register`` and ``/v0``): SHA-256 of the *hex-decoded* key
  body. inngest-py sends the bare digest; other SDKs put the ``signkey-<env>-`` prefix back.

inngest-py crashes on a key whose body is not even-length hex (``bytearray.fromhex``), and
``inngest start`` refuses one too, so ``validate_signing_key`` is meant for a system check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jcs

from django_inngest.sdk.errors import SdkProtocolError

SIGNATURE_HEADER = "X-Inngest-Signature"
_PREFIX = re.compile(r"^signkey-\w+-")
_VALID_KEY = re.compile(r"^signkey-\w+-(?:[0-9a-fA-F]{2})+$")


def validate_signing_key(key: object, *, field: str = "signing key") -> str:
    """``key`` if it is ``signkey-<env>-<even-length hex>``, else ``SdkProtocolError``.

    The message never repeats the key: it is a secret and may end up in logs.
    """
    if not isinstance(key, str) or not key:
        raise SdkProtocolError(field, "must be a non-empty string like 'signkey-prod-<hex>'")
    if not _PREFIX.match(key):
        raise SdkProtocolError(field, "must start with 'signkey-<env>-', e.g. 'signkey-prod-'")
    if not _VALID_KEY.match(key):
        raise SdkProtocolError(
            field,
            "after 'signkey-<env>-' must be hexadecimal of even length "
            "(inngest-py hex-decodes it and crashes otherwise)",
        )
    return key


def key_body(key: str) -> str:
    """The key without its ``signkey-<env>-`` prefix (unchanged when there is none)."""
    match = _PREFIX.match(key)
    return key[match.end() :] if match else key


def hashed_signing_key(key: str) -> str:
    """The Bearer token inngest-py sends for ``key``: bare SHA-256 hex of the hex-decoded body."""
    try:
        raw = bytes.fromhex(key_body(key))
    except ValueError as error:
        raise SdkProtocolError("signing key", "is not hexadecimal after its prefix") from error
    return hashlib.sha256(raw).hexdigest()


def bearer_token_matches(token: str, keys: Iterable[str]) -> bool:
    """True when ``token`` is one of ``keys`` raw, or hashed with or without the prefix.

    Every form of every key is compared, so the time taken does not tell which one matched.
    Keys whose body is not hex simply have no hashed form.
    """
    candidates: list[str] = []
    for key in keys:
        if not key:
            continue
        candidates.append(key)
        try:
            digest = hashed_signing_key(key)
        except SdkProtocolError:
            continue
        prefix = key[: len(key) - len(key_body(key))]
        candidates.append(digest)
        if prefix:
            candidates.append(prefix + digest)
    given = token.encode()
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(given, candidate.encode())
    return matched


def canonical_json(value: object) -> bytes:
    """The RFC 8785 (JCS) bytes of ``value``, produced by the ``jcs`` package the SDK uses.

    Side effects shared with Inngest's Go server: integers beyond 2**53 lose precision, ``1.0``
    becomes ``1``. NaN and infinities are not JSON and are refused.
    """
    try:
        encoded: bytes = jcs.canonicalize(value)
    except (AttributeError, TypeError, ValueError) as error:
        # AttributeError: jcs sorts keys by encoding them, so a non-string key ends up here.
        raise SdkProtocolError("body", f"cannot be canonicalised as JSON: {error}") from error
    return encoded


def _mac(key: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(key_body(key).encode("utf-8"), body, hashlib.sha256)
    digest.update(str(timestamp).encode("utf-8"))
    return digest.hexdigest()


def signature_header(body: bytes, key: str, *, timestamp: int | None = None) -> str:
    """``t=<unix s>&s=<hex>`` for ``body`` exactly as given (``t`` first: Inngest compares
    header strings)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at}&s={_mac(key, body, at)}"


@dataclass(frozen=True)
class SignedBody:
    """The bytes to send and the ``X-Inngest-Signature`` value that goes with them."""

    body: bytes
    signature: str


def sign_payload(payload: object, key: str, *, timestamp: int | None = None) -> SignedBody:
    """Canonicalise ``payload`` and sign it: what every request to an SDK app must carry."""
    body = canonical_json(payload)
    return SignedBody(body=body, signature=signature_header(body, key, timestamp=timestamp))


@dataclass(frozen=True)
class ParsedSignature:
    timestamp: int
    digest: str


def parse_signature_header(header: str) -> ParsedSignature:
    """Split ``t=<unix s>&s=<hex>``; ``SdkProtocolError`` when either part is missing or bad.

    inngest-py accepts a header without ``t`` (it then MACs the body alone); we do not, since
    every signature an SDK produces carries one.
    """
    parts = urllib.parse.parse_qs(header, keep_blank_values=True)
    stamps, digests = parts.get("t", []), parts.get("s", [])
    if len(stamps) != 1 or not stamps[0].isdigit():
        raise SdkProtocolError(SIGNATURE_HEADER, "needs one numeric 't=<unix seconds>'")
    if len(digests) != 1 or not re.fullmatch(r"[0-9a-f]{64}", digests[0]):
        raise SdkProtocolError(SIGNATURE_HEADER, "needs one 's=<64 hex digits>'")
    return ParsedSignature(timestamp=int(stamps[0]), digest=digests[0])


def matching_key(
    body: bytes,
    header: str | None,
    keys: Sequence[str],
    *,
    max_age_seconds: float | None = None,
    now: float | None = None,
) -> str | None:
    """The first of ``keys`` (primary, then fallbacks) whose signature over ``body`` equals
    ``header``, or None. ``body`` is used as given: raw for responses, JCS for requests.

    ``max_age_seconds`` refuses signatures whose ``t`` is further than that from ``now``:
    inngest-py never checks freshness, so replay protection is the verifier's job.
    """
    if not header:
        return None
    try:
        parsed = parse_signature_header(header)
    except SdkProtocolError:
        return None
    if max_age_seconds is not None:
        current = time.time() if now is None else now
        if abs(current - parsed.timestamp) > max_age_seconds:
            return None
    found: str | None = None
    for key in keys:
        if not key:
            continue
        # No early exit, so timing does not reveal which key matched.
        if hmac.compare_digest(parsed.digest, _mac(key, body, parsed.timestamp)) and not found:
            found = key
    return found


def verify_response(
    body: bytes,
    header: str | None,
    keys: Sequence[str],
    *,
    max_age_seconds: float | None = None,
    now: float | None = None,
) -> bool:
    """True when an SDK response is signed by one of ``keys``. The SDK signs the raw bytes it
    sent (no JCS) with the key that verified our request, primary or fallback."""
    return matching_key(body, header, keys, max_age_seconds=max_age_seconds, now=now) is not None


def verify_request(
    body: bytes,
    header: str | None,
    keys: Sequence[str],
    *,
    max_age_seconds: float | None = None,
    now: float | None = None,
) -> bool:
    """True when a request is signed by one of ``keys`` the way the SDK checks it: over the JCS
    form of whatever JSON ``body`` holds. A body that is not JSON is never verified."""
    try:
        canonical = canonical_json(json.loads(body)) if body else b""
    except (ValueError, SdkProtocolError):
        return False
    key = matching_key(canonical, header, keys, max_age_seconds=max_age_seconds, now=now)
    return key is not None
