"""The SDK protocol layer (``sdk/``) wired to our settings: keys, mode, the URL guard and one
keep-alive transport per process.

Every outgoing request to an SDK app (call requests, sync PUTs) goes through ``transport()``,
whose connections dial only addresses the URL guard vetted at that moment.
"""

from __future__ import annotations

import threading

from django.conf import settings as django_settings

from django_inngest.conf import settings
from django_inngest.sdk.transport import Transport
from django_inngest.sdk.url_guard import UrlGuard
from django_inngest.sdk.wire import ServerKind

_lock = threading.Lock()
_transports: dict[tuple[object, ...], Transport] = {}
#: A sync should take a second; waiting long only hides the self-call deadlock (below).
SYNC_TIMEOUT_SECONDS = 30.0
#: Added to timeout messages: the deadlock of one web server serving the app and this server.
SELF_CALL_HINT = (
    " (if the app is served by the same web server as django_inngest, that server needs more "
    "than one worker or thread: the app calls back into it, to /fn/register or /e/)"
)


def server_kind() -> ServerKind:
    """What we tell SDK apps we are (``X-Inngest-Server-Kind``)."""
    return "dev" if settings.SDK_MODE == "dev" else "cloud"


def is_dev() -> bool:
    return server_kind() == "dev"


def signing_keys() -> list[str]:
    """The keys SDK apps may sign with or present: the primary first, then the fallback."""
    return [key for key in (settings.SIGNING_KEY, settings.SDK_SIGNING_KEY_FALLBACK) if key]


def allowed_hosts() -> list[str]:
    configured = settings.SDK_ALLOWED_HOSTS
    return list(django_settings.ALLOWED_HOSTS if configured is None else configured)


def url_guard() -> UrlGuard:
    """Which serve URLs we may call (SSRF), from ``SDK_ALLOWED_HOSTS``/``_NETWORKS``."""
    return UrlGuard(allowed_hosts(), settings.SDK_ALLOWED_NETWORKS)


def transport() -> Transport:
    """This process's transport for call requests (a settings change gets a new one)."""
    return _transport(settings.SDK_HTTP_TIMEOUT_SECONDS)


def sync_transport() -> Transport:
    """The transport for sync PUTs: a short timeout, a sync is quick."""
    return _transport(min(SYNC_TIMEOUT_SECONDS, settings.SDK_HTTP_TIMEOUT_SECONDS))


def _transport(timeout: float) -> Transport:
    key = (
        tuple(allowed_hosts()),
        tuple(settings.SDK_ALLOWED_NETWORKS),
        timeout,
        settings.SDK_CONNECT_TIMEOUT_SECONDS,
    )
    with _lock:
        found = _transports.get(key)
        if found is None:
            guard = url_guard()
            found = _transports[key] = Transport(
                timeout=timeout,
                connect_timeout=settings.SDK_CONNECT_TIMEOUT_SECONDS,
                addresses_for=guard.addresses_for,
                user_agent="django-inngest",
            )
        return found
