"""Fuzzing the HTTP surface: the REST API against its own OpenAPI document, and /e/<key>.

* schemathesis generates requests (valid and invalid) from the served schema for every
  operation and checks each response: no 5xx, a documented status code and content type, and
  a body that conforms to the documented schema.
* hypothesis throws JSON (event-shaped, arbitrary, nested, with NULs and surrogates) and raw
  bytes at the event API: it answers 200 or a 4xx, never a 5xx.

Example counts are bounded so the file runs in well under a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

BEARER = "Bearer signkey-test-0123456789abcdef0123456789abcdef"
FUZZ_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible in CI
    suppress_health_check=list(HealthCheck),
)

schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", get_wsgi_application())


@pytest.fixture
def keep_connection() -> Iterator[None]:
    """Calls go through the real WSGI handler, which closes the database connection at the
    end of each request; inside the test's transaction it must stay open (as Django's test
    client arranges)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@FUZZ_SETTINGS
def test_rest_api_conforms_to_its_schema(case: Any, db: None, keep_connection: None) -> None:
    case.call_and_validate(
        headers={"Authorization": BEARER},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_the_schema_is_strict() -> None:
    document = schema.raw_schema
    run = document["paths"]["/v1/runs/{run_id}"]["get"]
    (run_id,) = [p for p in run["parameters"] if p["name"] == "run_id"]
    assert run_id["schema"]["pattern"].startswith("^[0-7]")
    listing = document["paths"]["/v1/events"]["get"]["parameters"]
    cursor = next(p for p in listing if p["name"] == "cursor")
    limit = next(p for p in listing if p["name"] == "limit")
    assert cursor["schema"]["pattern"] == "^[A-Za-z0-9_-]+$"
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    components = document["components"]["schemas"]
    assert "run_id" in components["Run"]["required"] and "ended_at" in components["Run"]["required"]
    assert "Cancelled" in components["StepStatusEnum"]["enum"]
    # The cancel reason: a JSON body on DELETE (which drf-spectacular leaves out) and on POST.
    cancel = document["paths"]["/v1/runs/{run_id}"]["delete"]
    body = cancel["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CancelRunRequest"}
    assert components["CancelRunRequest"]["properties"]["reason"]["maxLength"] == 1000
    assert "reason" in components["CancellationCreateRequest"]["properties"]
    assert "503" in cancel["responses"]  # the database is down: Retry-After
    assert set(components["CancellationCreateRequest"]["required"]) >= {
        "app_id",
        "function_id",
        "started_before",
    }


def test_docs_page_is_served_offline(client: Client) -> None:
    page = client.get("/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "spec-url='openapi.json'" in html and "docs/redoc.standalone.js" in html
    assert "http" not in html.replace("http-equiv", "")  # nothing from another host
    bundle = client.get("/v1/docs/redoc.standalone.js")
    assert bundle.status_code == 200 and bundle["Content-Type"] == "text/javascript"
    assert b"redoc" in b"".join(bundle.streaming_content)[:100_000].lower()


# -- the event API --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
#: Names as senders get them wrong: padded, reserved, hidden behind invisible characters,
#: and longer than the column.
names = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda pad, name, tail: pad + name + tail,
        st.sampled_from(["", " ", "\t", "\u00a0", "\u200b", "\u2060", "\n"]),
        st.sampled_from(["inngest/function.cancelled", "INNGEST/x", "app/x", "a/" + "n" * 300]),
        st.sampled_from(["", " ", "\r\n"]),
    ),
    json_values,
)
#: Strings around each column's width (ids 255, v 64).
long_text = st.integers(min_value=0, max_value=300).map(lambda n: "x" * n)
#: Around Inngest's accepted range of event times (1980 to 2100, in ms).
timestamps = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=315_532_799_990, max_value=315_532_800_010),
    st.integers(min_value=4_102_444_799_990, max_value=4_102_444_800_010),
    json_values,
)
events = st.fixed_dictionaries(
    {"name": names},
    optional={
        "data": json_values,
        "user": json_values,
        "id": st.one_of(st.text(max_size=40), long_text, json_values),
        "ts": timestamps,
        "v": st.one_of(long_text, json_values),
    },
)
bodies = st.one_of(
    events.map(json.dumps),
    st.lists(events, max_size=4).map(json.dumps),
    json_values.map(json.dumps),
    st.binary(max_size=200),
    st.text(max_size=200),
)


@pytest.mark.django_db
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", ""]))
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
def test_event_api_never_answers_5xx(body: str | bytes, content_type: str) -> None:
    response = Client().post("/e/test-event-key", data=body, content_type=content_type)
    assert response.status_code < 500, (body, response.content)
    payload = response.json()
    assert payload["status"] == response.status_code
    if response.status_code == 200:
        assert isinstance(payload["ids"], list) and payload["ids"]
    else:
        assert payload["error"]
