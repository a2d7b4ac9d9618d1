from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_inngest import Inngest, registrations
from django_inngest.registry import FunctionRegistry, registry
from django_inngest.sdk_apps.catalog import catalog

# Fixtures of the SDK protocol tests: a capture server and an inngest-py app (tests/sdkapp/);
# and of SDK-served functions: an inngest-py app our engine runs (tests/sdkserve/).
pytest_plugins = ["tests.sdkapp.fixtures", "tests.sdkserve.fixtures"]


@pytest.fixture(autouse=True)
def _fresh_registration_cache() -> Iterator[None]:
    # Each test gets a fresh database; the "already registered" cache must not outlive it.
    registrations.forget_cache()
    catalog.forget()  # nor the SDK apps' functions read from it
    yield
    registrations.forget_cache()
    catalog.forget()


@pytest.fixture
def isolated_registry() -> Iterator[FunctionRegistry]:
    """An empty function registry for the test; the autodiscovered one comes back after."""
    with registry.isolated() as isolated:
        yield isolated


@pytest.fixture
def inngest(isolated_registry: FunctionRegistry) -> Inngest:
    """An ``Inngest`` client whose functions live only for this test."""
    return Inngest(app_id="test-app")


@pytest.fixture(autouse=True)
def _fast_retries(settings: pytest.FixtureRequest) -> None:
    settings.DJANGO_INNGEST_RETRY_BACKOFF_SECONDS = 0.01  # type: ignore[attr-defined]
    settings.DJANGO_INNGEST_RETRY_BACKOFF_MAX_SECONDS = 0.05  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _close_worker_pool() -> Iterator[None]:
    # The worker pool's threads keep persistent connections (CONN_MAX_AGE on PostgreSQL);
    # close them so the test database can be flushed and dropped.
    yield
    from django_inngest.engine import worker_pool

    worker_pool.shutdown()
