"""Bad input never gets a 5xx (#14): every stored field is checked before writing, reserved
names cannot hide behind whitespace, and a database that is down gives 503 with Retry-After
in the API's own JSON shape (logged once, not a traceback per request)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import InterfaceError, OperationalError, connections
from django.test import Client

from django_inngest.api.unavailable import RETRY_AFTER_SECONDS, outage
from django_inngest.models import Event as StoredEvent
from tests.api_fixtures import EVENT_KEY, bearer_client, make_run

URL = f"/e/{EVENT_KEY}"


def post(body: Any) -> Any:
    return Client().post(URL, data=json.dumps(body), content_type="application/json")


def assert_400(response: Any, *fragments: str) -> None:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    assert payload["status"] == 400 and payload["ids"] == []
    for fragment in fragments:
        assert fragment in payload["error"], payload["error"]


# -- stored fields --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event", "field"),
    [
        # The bug: Django's HTML 500 (the column is 64 characters).
        ({"name": "app/x", "v": "v" * 65}, "`v` is longer than 64"),
        ({"name": "app/x", "id": "i" * 256}, "`id` is longer than 255"),
        ({"name": "n" * 256}, "`name` is longer than 255"),
        ({"name": "app/x", "ts": 315_532_799_999}, "`ts` must be between 1980-01-01"),
        ({"name": "app/x", "ts": 4_102_444_800_001}, "`ts` must be between"),
        ({"name": "app/x", "ts": -5}, "`ts`"),
        ({"name": "app/x", "ts": 1.7e12}, "`ts` must be an integer"),
        ({"name": "app/x", "user": "me"}, "`user` must be an object"),
        ({"name": "app/x", "user": [1]}, "`user` must be an object"),
        ({"name": "app/x", "data": [1]}, "`data` must be an object"),
    ],
)
def test_each_stored_field_is_checked_before_writing(event: dict[str, Any], field: str) -> None:
    assert_400(post(event), field)
    assert not StoredEvent.objects.exists()


@pytest.mark.django_db
def test_fields_at_their_limits_are_stored() -> None:
    event = {
        "name": "n" * 255,
        "id": "i" * 255,
        "v": "v" * 64,
        "ts": 4_102_444_800_000,
        "user": {"id": 1},
    }
    response = post(event)
    assert response.status_code == 200, response.content
    stored = StoredEvent.objects.get()
    assert (len(stored.name), len(stored.external_id), len(stored.v)) == (255, 255, 64)


# -- reserved names -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    [
        " inngest/function.cancelled",
        "inngest/function.cancelled ",
        "\tinngest/function.failed",
        "\u00a0inngest/function.cancelled",  # no-break space
        " app/x",
        "app/x\n",
    ],
)
def test_names_with_surrounding_whitespace_are_refused(name: str) -> None:
    assert_400(post({"name": name}), "`name` must not start or end with whitespace")
    assert not StoredEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["\u200binngest/function.cancelled", "\u2060INNGEST/function.cancelled"]
)
def test_invisible_characters_do_not_hide_the_reserved_prefix(name: str) -> None:
    assert_400(post({"name": name}), "reserved 'inngest/' prefix")


@pytest.mark.django_db
def test_the_python_api_refuses_them_too() -> None:
    from django_inngest.exceptions import EventValidationError
    from django_inngest.ingest.events import send_events

    with pytest.raises(EventValidationError, match="must not start or end with whitespace"):
        send_events([{"name": " inngest/function.cancelled"}])


# -- the database is down -------------------------------------------------------------------


@pytest.fixture
def fresh_outage() -> Iterator[None]:
    outage.succeeded()
    yield
    outage.succeeded()


def assert_503(response: Any, *, event_api: bool) -> None:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    assert payload["status"] == 503 and "database is unavailable" in payload["error"]
    if event_api:
        assert payload["ids"] == []


def outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    # Django's own "Service Unavailable: /path" line per request is suppressed too.
    assert not [r for r in caplog.records if r.name == "django.request"]
    return [r for r in caplog.records if r.name == "django_inngest.api"]


@pytest.mark.django_db
def test_event_api_answers_503_and_logs_the_outage_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fresh_outage: None
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr("django_inngest.api.event_api.send_events", down)
    caplog.set_level(logging.DEBUG, logger="django_inngest.api")
    for _ in range(3):
        assert_503(post({"name": "app/x"}), event_api=True)
    errors = [r for r in outage_records(caplog) if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None  # once, and no traceback
    assert "terminating connection" in errors[0].getMessage()
    monkeypatch.undo()
    assert post({"name": "app/x"}).status_code == 200
    assert any("available again" in r.getMessage() for r in outage_records(caplog))


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_rest_api_answers_503(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fresh_outage: None,
    error: type[Exception],
) -> None:
    run = make_run()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise error("connection already closed")

    monkeypatch.setattr("django_inngest.api.views_runs.get_run", down)
    api = bearer_client()
    for _ in range(2):
        assert_503(api.get(f"/v1/runs/{run.run_id}"), event_api=False)
    assert len([r for r in outage_records(caplog) if r.levelno >= logging.ERROR]) == 1
    monkeypatch.undo()
    assert api.get(f"/v1/runs/{run.run_id}").status_code == 200


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_a_real_unreachable_database_gives_503(fresh_outage: None) -> None:
    """No mock: the connection points at a closed port (PostgreSQL) or at a file that cannot
    be opened (SQLite), as during a restart."""
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict.update(HOST="127.0.0.1", PORT=closed_port())
    else:
        connection.settings_dict["NAME"] = "/nonexistent-directory/inngest.sqlite3"
    try:
        assert_503(post({"name": "app/x"}), event_api=True)
        assert_503(bearer_client().get("/v1/events"), event_api=False)
        assert_503(bearer_client().delete("/v1/runs/01HMRMPE5ZQ4AMNJ3S2N79QGRZ"), event_api=False)
        assert outage.ongoing
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert post({"name": "app/x"}).status_code == 200
    assert not outage.ongoing
