"""Secret checks for the HTTP surface: event keys (``/e/<key>``) and the signing key (Bearer).

Every comparison uses ``hmac.compare_digest`` and every candidate is compared, so the time taken
does not reveal which key, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from django_inngest.conf import settings

#: Inngest signing keys look like ``signkey-<env>-<hex>``; the prefix names the environment.
_SIGNING_KEY_PREFIX = re.compile(r"^signkey-\w+-")


def _matches_any(candidate: str, secrets: Iterable[str]) -> bool:
    given = candidate.encode()
    matched = False
    for secret in secrets:
        # No early exit: compare against every secret whatever the outcome.
        matched |= hmac.compare_digest(given, secret.encode())
    return matched


def event_key_is_valid(event_key: str) -> bool:
    """True when ``event_key`` is one of ``DJANGO_INNGEST_EVENT_KEYS`` (none configured: never)."""
    keys = [key for key in settings.EVENT_KEYS if isinstance(key, str) and key]
    return bool(keys) and _matches_any(event_key, keys)


def hashed_signing_key_forms(signing_key: str) -> list[str]:
    """The hashed forms SDKs send as Bearer tokens instead of the raw key.

    As inngest-py's ``hash_signing_key`` and Inngest's ``HandleSigningKey``: strip the
    ``signkey-<env>-`` prefix, hex-decode the rest and SHA-256 it. Current SDKs put the prefix
    back (``signkey-test-<sha256 hex>``); older ones send the bare digest, so both are listed.
    A key whose body is not hex has no hashed form.
    """
    match = _SIGNING_KEY_PREFIX.match(signing_key)
    prefix = match.group(0) if match else ""
    try:
        raw = bytes.fromhex(signing_key[len(prefix) :])
    except ValueError:
        return []
    if not raw:
        return []  # the digest of nothing is public knowledge, never a credential
    digest = hashlib.sha256(raw).hexdigest()
    return [prefix + digest, digest] if prefix else [digest]


def signing_key_is_valid(token: str) -> bool:
    """True when ``token`` is the configured signing key, raw or hashed. No key: bearer is off."""
    signing_key = settings.SIGNING_KEY
    if not signing_key:
        return False
    return _matches_any(token, [signing_key, *hashed_signing_key_forms(signing_key)])
