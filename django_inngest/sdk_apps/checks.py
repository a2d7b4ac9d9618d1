"""System checks for serving apps written with the official SDK (IDs in the README).

E040: ``SDK_MODE`` is neither "cloud" nor "dev". E041: ``SDK_ALLOWED_HOSTS`` or
``SDK_ALLOWED_NETWORKS`` holds something that is not a host pattern or a CIDR. W040: the
signing key is not ``signkey-<env>-<hex>``, which SDK apps need. W041: this project serves an
SDK app itself (the self-call deadlock). W042: the inline-state limit is over Django's
request-body limit. W043: django-q2 would kill a task before a call to an app times out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Warning
from django.urls import URLPattern, URLResolver, get_resolver

from django_inngest.conf import PREFIX
from django_inngest.conf import settings as inngest_settings
from django_inngest.sdk.errors import SdkProtocolError
from django_inngest.sdk.signing import validate_signing_key
from django_inngest.sdk.url_guard import UrlGuard


def check_sdk_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    mode = inngest_settings.raw("SDK_MODE")
    if mode not in ("cloud", "dev"):
        messages.append(
            Error(
                f"{PREFIX}SDK_MODE must be 'cloud' or 'dev', not {mode!r}.",
                hint="'dev' accepts unauthenticated syncs and unsigned answers: development only.",
                id="django_inngest.E040",
            )
        )
    hosts, networks = inngest_settings.SDK_ALLOWED_HOSTS, inngest_settings.SDK_ALLOWED_NETWORKS
    try:
        UrlGuard(list(django_settings.ALLOWED_HOSTS if hosts is None else hosts), networks)
    except (SdkProtocolError, TypeError) as error:
        messages.append(
            Error(
                f"{PREFIX}SDK_ALLOWED_HOSTS/SDK_ALLOWED_NETWORKS: {error}",
                hint="Hosts like 'app.example.com', '*.example.com', '10.0.0.5:8000'; "
                "networks like '10.0.0.0/8'.",
                id="django_inngest.E041",
            )
        )
    for name in ("SIGNING_KEY", "SDK_SIGNING_KEY_FALLBACK"):
        key = inngest_settings.raw(name)
        if not key or not isinstance(key, str):
            continue
        try:
            validate_signing_key(key, field=f"{PREFIX}{name}")
        except SdkProtocolError as error:
            messages.append(
                Warning(
                    f"{error}: apps using the official SDK cannot use it.",
                    hint='Generate one with: python -c "import secrets; '
                    "print('signkey-prod-' + secrets.token_hex(32))\"",
                    id="django_inngest.W040",
                )
            )
    messages += _serving_checks()
    return messages


def _serving_checks() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    serves = serves_sdk_app()
    if serves:
        messages.append(
            Warning(
                "This project serves an app written with the official SDK (inngest's serve()) "
                "as well as django_inngest's endpoints.",
                hint="The app calls back into this server (to /fn/register when syncing, to "
                "/e/ when a step sends events): run the web server with more than one worker "
                "or thread, or those calls wait on themselves until they time out. Silence "
                "this check once it does.",
                id="django_inngest.W041",
            )
        )
        limit = getattr(django_settings, "DATA_UPLOAD_MAX_MEMORY_SIZE", None)
        inline = inngest_settings.SDK_INLINE_STATE_MAX_BYTES
        if isinstance(limit, int) and inline > limit:
            messages.append(
                Warning(
                    f"{PREFIX}SDK_INLINE_STATE_MAX_BYTES ({inline}) is over "
                    f"DATA_UPLOAD_MAX_MEMORY_SIZE ({limit}).",
                    hint="The SDK's view reads request.body, which Django refuses above that "
                    "size: lower the first or raise the second.",
                    id="django_inngest.W042",
                )
            )
    configured = serves or inngest_settings.raw("SDK_ALLOWED_HOSTS") is not None
    if not (configured or inngest_settings.SDK_ALLOWED_NETWORKS):
        return messages  # this project runs no SDK app's functions: nothing to time out
    q_cluster = getattr(django_settings, "Q_CLUSTER", None) or {}
    task_timeout = q_cluster.get("timeout") if isinstance(q_cluster, dict) else None
    call_timeout = inngest_settings.SDK_HTTP_TIMEOUT_SECONDS
    budget = inngest_settings.INVOCATION_BUDGET_SECONDS
    if isinstance(task_timeout, int | float) and task_timeout < call_timeout + budget:
        messages.append(
            Warning(
                f"Q_CLUSTER['timeout'] ({task_timeout} s) is shorter than "
                f"{PREFIX}SDK_HTTP_TIMEOUT_SECONDS + INVOCATION_BUDGET_SECONDS "
                f"({call_timeout:g} + {budget:g} s).",
                hint="django-q2 would kill a worker waiting on a long step of an SDK app; "
                "the step then runs again. Raise the timeout (and 'retry' above it).",
                id="django_inngest.W043",
            )
        )
    return messages


def serves_sdk_app() -> bool:
    """Whether the URLconf routes to the official SDK's ``serve()`` view."""
    try:
        return any(_is_sdk_view(p) for p in _patterns(get_resolver().url_patterns))
    except Exception:  # a broken URLconf is Django's own check to report
        return False


def _patterns(patterns: list[Any]) -> Iterator[URLPattern]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns)
        elif isinstance(entry, URLPattern):
            yield entry


def _is_sdk_view(pattern: URLPattern) -> bool:
    module = getattr(pattern.callback, "__module__", "") or ""
    return module == "inngest" or module.startswith("inngest.")
