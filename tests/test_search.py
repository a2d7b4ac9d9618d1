"""Finding runs and events: payload search (admin and API), the error column, time ranges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_inngest.console.payload_search import (
    PayloadSearchError,
    looks_like_payload_search,
    parse_payload_search,
    payload_q,
)
from django_inngest.models import Event, FunctionRegistration, FunctionRun, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "admin:django_inngest_functionrun_changelist"
EVENTS = "admin:django_inngest_event_changelist"


@pytest.fixture
def data() -> dict[str, Any]:
    function = FunctionRegistration.objects.create(
        function_id="search-app-import", app_id="search-app", fn_id="import", name="Import"
    )
    other = FunctionRegistration.objects.create(
        function_id="search-app-other", app_id="search-app", fn_id="other", name="Other"
    )
    now = timezone.now()

    def event(name: str, payload: dict[str, Any], minutes_ago: float = 1) -> Event:
        moment = now - timedelta(minutes=minutes_ago)
        return Event.objects.create(name=name, data=payload, ts=0, received_at=moment)

    def run(fn: FunctionRegistration, ev: Event, **fields: Any) -> FunctionRun:
        return FunctionRun.objects.create(
            function=fn, event=ev, created_at=ev.received_at, **fields
        )

    abc = event("contacts/import.requested", {"importId": "abc", "user": {"id": 42}})
    xyz = event("contacts/import.requested", {"importId": "xyz", "user": {"id": "42"}}, 30)
    old = event("contacts/import.requested", {"importId": "old", "user": {"id": 7}}, 60 * 30)
    return {
        "abc": abc,
        "xyz": xyz,
        "old": old,
        "run_abc": run(function, abc),
        "run_abc_other": run(other, abc),
        "run_xyz": run(
            function,
            xyz,
            status=RunStatus.FAILED,
            ended_at=now,
            error={"name": "ValueError", "message": "row 17 is bad", "error": "ValueError: row 17"},
        ),
        "run_old": run(function, old),
    }


def listed(client: Client, url: str, **params: str) -> set[str]:
    response = client.get(reverse(url), params)
    assert response.status_code == 200, response.content[:500]
    return {str(obj.pk) for obj in response.context["cl"].result_list}


# -- syntax ---------------------------------------------------------------------------------


def test_syntax() -> None:
    (term,) = parse_payload_search("importId=abc")
    assert (term.path, term.values) == (("importId",), ("abc",))
    (term,) = parse_payload_search("data.user.id:42")
    assert (term.path, term.values) == (("user", "id"), (42, "42"))
    (term,) = parse_payload_search('user.id="42"')
    assert term.values == ("42",)
    assert len(parse_payload_search("importId=abc plan=pro")) == 2
    assert looks_like_payload_search("importId=abc")
    assert not looks_like_payload_search("01HMRMPE5ZQ4AMNJ3S2N79QGRZ")
    assert not looks_like_payload_search("contacts/import.requested")
    with pytest.raises(PayloadSearchError, match="importId: give a value"):
        parse_payload_search("importId=")
    with pytest.raises(PayloadSearchError, match="close the quotes"):
        parse_payload_search('importId="abc')
    with pytest.raises(PayloadSearchError, match="at most 5"):
        parse_payload_search("a=1 b=2 c=3 d=4 e=5 f=6")


def test_a_key_named_like_a_lookup_is_a_key(data: dict[str, Any]) -> None:
    Event.objects.create(name="x", data={"contains": "yes"}, ts=0, received_at=timezone.now())
    found = Event.objects.filter(payload_q(parse_payload_search("contains=yes")))
    assert [e.data for e in found] == [{"contains": "yes"}]


# -- the admin ------------------------------------------------------------------------------


def test_admin_finds_runs_by_a_payload_value(data: dict[str, Any], admin_client: Client) -> None:
    expected = {data["run_abc"].pk, data["run_abc_other"].pk}
    assert listed(admin_client, RUNS, q="importId=abc") == expected
    assert listed(admin_client, RUNS, q="data.importId:abc") == expected
    # 42 matches the number and the string; quoted, only the string.
    assert listed(admin_client, RUNS, q="user.id=42") == expected | {data["run_xyz"].pk}
    assert listed(admin_client, RUNS, q='user.id="42"') == {data["run_xyz"].pk}
    assert listed(admin_client, RUNS, q="importId=abc user.id=7") == set()
    # The exact ID search still works.
    assert listed(admin_client, RUNS, q=data["run_old"].pk) == {data["run_old"].pk}


def test_admin_explains_a_bad_payload_search(data: dict[str, Any], admin_client: Client) -> None:
    response = admin_client.get(reverse(RUNS), {"q": 'importId="abc'})
    assert response.status_code == 200
    assert "close the quotes" in response.content.decode()
    assert not list(response.context["cl"].result_list)


def test_admin_finds_events_by_a_payload_value_and_counts_their_runs(
    data: dict[str, Any], admin_client: Client
) -> None:
    assert listed(admin_client, EVENTS, q="importId=xyz") == {data["xyz"].pk}
    assert listed(admin_client, EVENTS, q="contacts/import") == {
        data["abc"].pk,
        data["xyz"].pk,
        data["old"].pk,
    }
    response = admin_client.get(reverse(EVENTS))
    counts = {event.pk: event.run_count for event in response.context["cl"].result_list}
    assert counts[data["abc"].pk] == 2 and counts[data["xyz"].pk] == 1
    assert f'?q={data["abc"].pk}">2</a>' in response.content.decode()


def test_runs_list_shows_the_error_and_the_times(
    data: dict[str, Any], admin_client: Client
) -> None:
    content = admin_client.get(reverse(RUNS), {"status__exact": "Failed"}).content.decode()
    assert 'class="inngest-error-cell" title="ValueError: row 17 is bad"' in content
    for column in ("column-started", "column-ended", "column-duration", "column-error_summary"):
        assert column in content


def test_runs_filter_by_time_range_and_function(data: dict[str, Any], admin_client: Client) -> None:
    an_hour_ago = (timezone.now() - timedelta(hours=1)).isoformat()
    recent = {data["run_abc"].pk, data["run_abc_other"].pk, data["run_xyz"].pk}
    assert listed(admin_client, RUNS, created_after=an_hour_ago) == recent
    assert listed(admin_client, RUNS, created_before=an_hour_ago) == {data["run_old"].pk}
    two_hours_ago = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    assert listed(
        admin_client,
        RUNS,
        created_after=two_hours_ago,
        function__function_id__exact="search-app-import",
    ) == {data["run_abc"].pk, data["run_xyz"].pk}
    content = admin_client.get(reverse(RUNS)).content.decode()
    assert 'data-preset="1h"' in content and 'name="created_after"' in content
    # A time that is not ISO 8601 is refused by the admin (its error page), not a crash.
    response = admin_client.get(reverse(RUNS), {"created_after": "yesterday"})
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert response.context["cl"].result_count == 0 or "e=1" in response.url


# -- the API --------------------------------------------------------------------------------


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer signkey-test-0123456789abcdef0123456789abcdef")
    return client


def test_api_filters_events_by_payload(data: dict[str, Any], api: APIClient) -> None:
    def ids(query: str) -> set[str]:
        response = api.get(f"/v1/events?{query}")
        assert response.status_code == 200, response.content
        return {item["internal_id"] for item in response.json()["data"]}

    assert ids("data.importId=abc") == {data["abc"].pk}
    assert ids("data.user.id=42") == {data["abc"].pk, data["xyz"].pk}
    assert ids("data.user.id=%2242%22") == {data["xyz"].pk}
    assert ids("data.importId=abc&name=contacts/import.requested") == {data["abc"].pk}
    assert ids("data.importId=nothing") == set()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("data.=x", "data."),
        ("data.importId=", "data.importId"),
        ("data.importId=a&data.importId=b", "given twice"),
        ("other=1", "Unknown query parameter"),
    ],
)
def test_api_payload_filter_errors_name_the_parameter(
    data: dict[str, Any], api: APIClient, query: str, message: str
) -> None:
    response = api.get(f"/v1/events?{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the GIN index is PostgreSQL's")
def test_postgres_payload_search_uses_the_gin_index(data: dict[str, Any]) -> None:
    query = Event.objects.filter(payload_q(parse_payload_search("importId=abc")))
    sql, params = query.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        # The tables are tiny, so the planner would scan them; forbid that to see the index
        # is usable for the query as the ORM writes it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "inngest_event_data_gin" in plan, plan
    assert "@>" in plan
