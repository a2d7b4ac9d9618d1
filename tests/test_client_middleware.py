"""Client-level middleware: ``Inngest(middleware=...)``, ``add_middleware`` and the send hooks."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync

from django_inngest import Event, Inngest, Middleware, MiddlewareSync, PydanticSerializer
from django_inngest.exceptions import ConfigurationError
from django_inngest.models import Event as StoredEvent
from django_inngest.sdk_types import SendEventsResult


class Recorder(MiddlewareSync):
    log: list[Any] = []

    def before_send_events(self, events: list[Event]) -> None:
        self.log.append(("before", [e.name for e in events]))
        for event in events:
            event.data["tagged"] = True  # type: ignore[index]

    def after_send_events(self, result: SendEventsResult) -> None:
        self.log.append(("after", result.error, len(result.ids)))


class AsyncRecorder(Middleware):
    log: list[Any] = []

    async def before_send_events(self, events: list[Event]) -> None:
        self.log.append(("async before", len(events)))

    async def after_send_events(self, result: SendEventsResult) -> None:
        self.log.append(("async after", len(result.ids)))


@pytest.fixture(autouse=True)
def _clear_logs() -> None:
    Recorder.log = []
    AsyncRecorder.log = []


def test_client_keeps_middleware_and_serializer() -> None:
    serializer = PydanticSerializer()
    client = Inngest(app_id="a", middleware=[Recorder], serializer=serializer)
    assert client.middleware == [Recorder]
    assert client.serializer is serializer
    client.add_middleware(AsyncRecorder)
    assert client.middleware == [Recorder, AsyncRecorder]
    assert Inngest(app_id="b").middleware == []


def test_bad_client_middleware_and_serializer_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"Inngest\(app_id='a'\): middleware must be"):
        Inngest(app_id="a", middleware=Recorder)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"serializer=\.\.\.\) must have serialize"):
        Inngest(app_id="a", serializer=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must subclass"):
        Inngest(app_id="a").add_middleware(dict)  # type: ignore[arg-type]


@pytest.mark.django_db(transaction=True)
def test_send_sync_runs_the_send_hooks_around_storing(isolated_registry: Any) -> None:
    client = Inngest(app_id="a", middleware=[Recorder])
    ids = client.send_sync([Event(name="app/one", data={}), Event(name="app/two", data={})])
    assert Recorder.log == [("before", ["app/one", "app/two"]), ("after", None, 2)]
    # before_send_events mutated the data: what was stored is the mutated event.
    stored = StoredEvent.objects.get(internal_id=ids[0])
    assert stored.data == {"tagged": True}


@pytest.mark.django_db(transaction=True)
def test_send_sync_reports_a_failed_send_to_after_send_events(isolated_registry: Any) -> None:
    client = Inngest(app_id="a", middleware=[Recorder])
    with pytest.raises(Exception) as caught:
        client.send_sync(Event(name="inngest/reserved", data={}))
    assert Recorder.log[0] == ("before", ["inngest/reserved"])
    assert Recorder.log[1] == ("after", str(caught.value), 0)


@pytest.mark.django_db(transaction=True)
def test_skip_middleware_skips_the_hooks(isolated_registry: Any) -> None:
    client = Inngest(app_id="a", middleware=[Recorder])
    client.send_sync(Event(name="app/one", data={}), skip_middleware=True)
    assert Recorder.log == []


def test_send_sync_refuses_async_client_middleware() -> None:
    client = Inngest(app_id="a", middleware=[AsyncRecorder])
    with pytest.raises(ConfigurationError, match="AsyncRecorder is async"):
        client.send_sync(Event(name="app/one", data={}))
    assert AsyncRecorder.log == []


@pytest.mark.django_db(transaction=True)
def test_async_send_awaits_async_and_calls_sync_middleware(isolated_registry: Any) -> None:
    client = Inngest(app_id="a", middleware=[Recorder, AsyncRecorder])
    ids = async_to_sync(client.send)(Event(name="app/one", data={}))
    assert len(ids) == 1
    assert Recorder.log == [("before", ["app/one"]), ("after", None, 1)]
    assert AsyncRecorder.log == [("async before", 1), ("async after", 1)]
