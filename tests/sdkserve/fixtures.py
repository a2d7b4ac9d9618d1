"""Fixtures for the tests of SDK-served functions (registered in tests/conftest.py): the live
server serving both our endpoints and the inngest-py app, the app synced, and runs driven by
hand (dispatches are collected, then advanced in the test thread as a worker would)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    # Imported when used: this module loads before Django is set up.
    from django_inngest.models import FunctionRun
    from django_inngest.sdk_apps.sync import SyncOutcome
    from tests.sdkserve.app import ServedApps

_built: dict[str, ServedApps] = {}


@dataclass
class SdkServer:
    origin: str
    apps: ServedApps
    dispatched: list[str]

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def sync(self, path: str | None = None, **options: Any) -> SyncOutcome:
        from django_inngest.sdk_apps.sync import request_sync
        from tests.sdkserve.app import SERVE_PATH

        return request_sync(self.url(path or SERVE_PATH), **options)

    def emit(self, name: str, **data: Any) -> str:
        """Send an event, as any Django code would; its internal ID."""
        from django_inngest import Event, Inngest

        (event_id,) = Inngest(app_id="sdkserve-tests").send_sync(Event(name=name, data=data))
        return str(event_id)

    def send(self, name: str, **data: Any) -> FunctionRun:
        """Send an event; the one run it starts, not advanced yet."""
        from django_inngest.models import FunctionRun

        return FunctionRun.objects.get(event_id=self.emit(name, **data))

    def drain(self, limit: int = 100) -> dict[str, str]:
        """Advance every dispatched run, and those their turns dispatch, until none is left."""
        from django_inngest.engine import worker

        outcomes: dict[str, str] = {}
        for _ in range(limit):
            if not self.dispatched:
                return outcomes
            batch = list(dict.fromkeys(self.dispatched))
            self.dispatched.clear()
            for run_id in batch:
                outcomes[run_id] = worker.advance(run_id)
        raise AssertionError(f"still dispatching after {limit} rounds: {outcomes}")

    def run(self, name: str, **data: Any) -> FunctionRun:
        """Send, advance everything, and return the run as it now is."""
        from django_inngest.models import FunctionRun

        run = self.send(name, **data)
        self.drain()
        return FunctionRun.objects.get(pk=run.pk)


def _apps(origin: str) -> ServedApps:
    from tests.sdkserve.app import build

    if origin not in _built:
        _built[origin] = build(origin)
    return _built[origin]


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run IDs our engine dispatched (wake-ups are collected, not executed)."""
    collected: list[str] = []
    monkeypatch.setattr("django_inngest.executor.dispatch", collected.extend)
    return collected


@dataclass(frozen=True)
class Call:
    """One call request our engine sent: to which step (None: untargeted), which attempt."""

    run_id: str
    target: str | None
    attempt: int
    use_api: bool
    outcome: str


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every call request the engine sends, with what came back (the send itself is real)."""
    from django_inngest.engine import remote_calls

    seen: list[Call] = []
    real = remote_calls.send

    def recording(prepared: Any) -> Any:
        answer = real(prepared)
        run_id = prepared.headers["X-Run-ID"]
        outcome = answer.outcome
        ops = getattr(outcome, "ops", None)
        label = type(outcome).__name__ + (f"{[type(op).__name__ for op in ops]}" if ops else "")
        seen.append(Call(run_id, prepared.target, prepared.attempt, prepared.use_api, label))
        return answer

    for module in ("remote", "remote_ops"):
        monkeypatch.setattr(f"django_inngest.engine.{module}.send", recording)
    return seen


@pytest.fixture
def sdk_allowed(settings: Any) -> None:
    """Let workers call the live server (loopback is refused unless allowed)."""
    settings.DJANGO_INNGEST_SDK_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    settings.DJANGO_INNGEST_SDK_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


def _close_server_thread_connections(**_: Any) -> None:
    import threading

    from django.db import connections

    # The SDK's HTTP client keeps its connection to the live server alive, so the server
    # thread serving it lives on, and with it (CONN_MAX_AGE) its database connection: close
    # it after each request, or the test database cannot be dropped at the end.
    if threading.current_thread() is not threading.main_thread():
        connections.close_all()


@pytest.fixture
def _server_threads_hold_no_connections() -> Any:
    from django.core.signals import request_finished

    request_finished.connect(_close_server_thread_connections, dispatch_uid="sdkserve-tests")
    yield
    request_finished.disconnect(dispatch_uid="sdkserve-tests")


@pytest.fixture
def sdk_unsynced(
    live_server: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    dispatched: list[str],
    sdk_allowed: None,
    _server_threads_hold_no_connections: None,
) -> SdkServer:
    """The inngest-py app served on the live server, not synced yet."""
    from tests.sdkserve.app import probe

    for name in ("INNGEST_DEV", "INNGEST_SIGNING_KEY_FALLBACK", "INNGEST_SERVE_ORIGIN"):
        monkeypatch.delenv(name, raising=False)
    apps = _apps(live_server.url)
    settings.ROOT_URLCONF = apps.urlconf
    probe.reset()
    return SdkServer(origin=live_server.url, apps=apps, dispatched=dispatched)


@pytest.fixture
def sdk_server(sdk_unsynced: SdkServer) -> SdkServer:
    """The inngest-py app, synced: its functions are ours to run."""
    outcome = sdk_unsynced.sync()
    assert outcome.ok, outcome.message
    return sdk_unsynced
