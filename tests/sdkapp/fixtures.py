"""Fixtures for the SDK protocol tests (registered in tests/conftest.py via pytest_plugins).

inngest-py is imported only when a fixture is used, so that the rest of the suite does not load
it (nor see its import-time deprecation warnings)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client

from tests.sdkapp.capture import CaptureServer

if TYPE_CHECKING:
    import inngest

    from tests.sdkapp.functions import SyncFunctions

#: As tests.sdkapp.functions.SIGNING_KEY (not imported from there: that would load inngest-py).
_SIGNING_KEY = "signkey-test-0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="session")
def _capture_server_session() -> Iterator[CaptureServer]:
    server = CaptureServer().start()
    yield server
    server.stop()


@pytest.fixture
def capture_server(_capture_server_session: CaptureServer) -> Iterator[CaptureServer]:
    """Our server's stand-in for the SDK's calls to ``/e/`` and ``/fn/register``."""
    _capture_server_session.reset()
    yield _capture_server_session
    _capture_server_session.reset()


@dataclass(frozen=True)
class SdkApp:
    client: inngest.Inngest
    fns: SyncFunctions
    async_fns: list[Any]
    http: Client


def make_sdk_app(
    api_origin: str,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    signing_key: str = _SIGNING_KEY,
    signing_key_fallback: str | None = None,
    is_production: bool = True,
) -> SdkApp:
    """Build the inngest-py test app and serve it under this test's ROOT_URLCONF only.

    inngest-py reads its fallback key only from the environment, hence ``monkeypatch``."""
    from tests.sdkapp.functions import build_async_functions, build_client, build_sync_functions
    from tests.sdkapp.harness import urlconf

    for name in (
        "INNGEST_DEV",
        "INNGEST_SIGNING_KEY_FALLBACK",
        "INNGEST_SERVE_ORIGIN",
        "INNGEST_SERVE_PATH",
    ):
        monkeypatch.delenv(name, raising=False)
    if signing_key_fallback is not None:
        monkeypatch.setenv("INNGEST_SIGNING_KEY_FALLBACK", signing_key_fallback)
    client = build_client(api_origin, signing_key=signing_key, is_production=is_production)
    fns = build_sync_functions(client)
    async_fns = build_async_functions(client)
    settings.ROOT_URLCONF = urlconf(client, fns, async_fns)
    return SdkApp(client=client, fns=fns, async_fns=async_fns, http=Client())


@pytest.fixture
def sdk_app(
    capture_server: CaptureServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> SdkApp:
    """The inngest-py test app, its API pointed at the capture server."""
    return make_sdk_app(capture_server.url, settings, monkeypatch)
