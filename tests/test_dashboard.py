"""The dashboard: aggregates per bucket (counts, percentiles, the derived backlog), its page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_inngest.console.dashboard import build_dashboard
from django_inngest.console.svg_charts import Series, line_chart, nice_ceiling, nice_duration_step
from django_inngest.models import Event, FunctionRegistration, FunctionRun, StepRun

pytestmark = pytest.mark.django_db(transaction=True)

#: A fixed "now" on an hour boundary, so the day window's hourly buckets are predictable.
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def at(hours_ago: float) -> datetime:
    return NOW - timedelta(hours=hours_ago)


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # Ended buckets are cached; each test writes its own past, so each starts with none.
    cache.clear()


@pytest.fixture
def runs() -> dict[str, Any]:
    fast = FunctionRegistration.objects.create(
        function_id="dash-fast", app_id="dash", fn_id="fast", name="Fast"
    )
    slow = FunctionRegistration.objects.create(
        function_id="dash-slow", app_id="dash", fn_id="slow", name="Slow"
    )
    event = Event.objects.create(name="dash/e", ts=0, received_at=at(30))

    def run(
        fn: FunctionRegistration, created: float, seconds: float | None, status: str, **kw: Any
    ) -> FunctionRun:
        ended = at(created) + timedelta(seconds=seconds) if seconds is not None else None
        return FunctionRun.objects.create(
            function=fn,
            event=event,
            status=status,
            created_at=at(created),
            started_at=kw.pop("started_at", at(created)),
            ended_at=ended,
            **kw,
        )

    made = {
        # Three hours ago: three fast runs of 1, 2 and 3 s, one failed slow run of 60 s.
        "f1": run(fast, 3.5, 1, "Completed"),
        "f2": run(fast, 3.5, 2, "Completed"),
        "f3": run(fast, 3.5, 3, "Completed"),
        "s1": run(slow, 3.5, 60, "Failed"),
        # Queued for the last 2.5 hours, never started.
        "q": run(fast, 2.5, None, "Queued", started_at=None),
        # Cancelled while queued, one hour after it was created.
        "qc": run(fast, 5.5, 3600, "Cancelled", started_at=None),
        # Sleeping since 1.5 hours ago; started 2 hours ago.
        "sleeper": run(slow, 2.5, None, "Running", wait_kind="sleep"),
        # Too old for the day window.
        "old": run(fast, 30, 5, "Completed"),
    }
    StepRun.objects.create(
        run=made["sleeper"],
        step_id="nap",
        position=0,
        kind="sleep",
        status="Sleeping",
        started_at=at(1.5),
        wake_at=NOW + timedelta(hours=1),
    )
    return made


def index(board: Any, hours_ago: float) -> int:
    moment = at(hours_ago)
    return max(i for i, start in enumerate(board.buckets) if start <= moment)


def test_counts_per_bucket_and_totals(runs: dict[str, Any]) -> None:
    board = build_dashboard("day", now=NOW)
    assert len(board.buckets) == 25  # 24 hours, the first and last partly
    bucket = index(board, 3.5)
    assert board.started[bucket] == 4
    assert board.ended["Completed"][bucket] == 3 and board.ended["Failed"][bucket] == 1
    assert board.ended["Cancelled"][index(board, 4.5)] == 1
    assert board.overall == {
        "started": 7,
        "completed": 3,
        "failed": 1,
        "cancelled": 1,
        "p50": 2.0,
        "p95": 60.0,
    }


def test_percentiles_are_nearest_rank(runs: dict[str, Any]) -> None:
    board = build_dashboard("day", now=NOW)
    bucket = index(board, 3.5)
    assert (board.p50[bucket], board.p95[bucket]) == (2.0, 60.0)
    assert board.p50[index(board, 1)] is None  # nothing ended: no point, not zero
    fast = build_dashboard("day", "dash-fast", now=NOW)
    assert (fast.p50[bucket], fast.p95[bucket]) == (2.0, 3.0)
    assert fast.overall["failed"] == 0 and fast.overall["started"] == 5


def test_slowest_and_most_failing_functions(runs: dict[str, Any]) -> None:
    board = build_dashboard("day", now=NOW)
    assert [row["function_id"] for row in board.slowest] == ["dash-slow", "dash-fast"]
    assert board.slowest[0]["p95"] == 60.0
    assert board.failing == [{"function_id": "dash-slow", "failed": 1, "ended": 1, "rate": 1.0}]


def test_backlog_is_derived_from_timestamps(runs: dict[str, Any]) -> None:
    board = build_dashboard("day", now=NOW)
    # Each value is the level at its bucket's end (the last one's: now).
    # Queued: "qc" from 06:30 to 07:30, "q" from 09:30 until now.
    assert board.queued[index(board, 5.9)] == 1  # 06:00-07:00
    assert board.queued[index(board, 5)] == 0  # 07:00-08:00: qc was cancelled at 07:30
    assert board.queued[index(board, 2)] == 1 and board.queued[-1] == 1
    # Waiting: the sleeper from 10:30.
    assert board.waiting[index(board, 2.5)] == 0  # 09:00-10:00
    assert board.waiting[index(board, 2)] == 1 and board.waiting[-1] == 1


def test_a_cancel_ends_the_wait_in_the_backlog(runs: dict[str, Any]) -> None:
    FunctionRun.objects.filter(pk=runs["sleeper"].pk).update(
        status="Cancelled", wait_kind="", ended_at=at(0.5)
    )
    board = build_dashboard("day", now=NOW)
    assert board.waiting[index(board, 1.5)] == 1  # 10:00-11:00
    assert board.waiting[index(board, 1)] == 0  # 11:00-12:00: cancelled at 11:30
    assert board.waiting[-1] == 0


def test_ended_buckets_are_cached_and_only_the_open_one_is_queried(
    runs: dict[str, Any],
) -> None:
    cold = build_dashboard("day", now=NOW)
    # A change to an ended bucket is not seen until the cache expires: the cache is used.
    FunctionRun.objects.filter(pk=runs["f1"].pk).update(status="Failed")
    warm = build_dashboard("day", now=NOW)
    assert warm.ended == cold.ended and warm.p95 == cold.p95
    FunctionRun.objects.create(
        function=runs["f1"].function,
        event=runs["f1"].event,
        status="Completed",
        created_at=NOW - timedelta(minutes=30),
        started_at=NOW - timedelta(minutes=30),
        ended_at=NOW - timedelta(minutes=29),
    )
    fresh = build_dashboard("day", now=NOW)
    # 11:00-12:00 ended less than a minute before "now": not final yet, so read again.
    assert fresh.started[-2] == warm.started[-2] + 1


def test_the_queries_do_not_grow_with_the_rows(runs: dict[str, Any]) -> None:
    with CaptureQueriesContext(connection) as few:
        build_dashboard("week", now=NOW)
    cache.clear()
    FunctionRun.objects.bulk_create(
        FunctionRun(
            function=runs["f1"].function,
            event=runs["f1"].event,
            status="Completed",
            created_at=at(n / 10),
            started_at=at(n / 10),
            ended_at=at(n / 10),
        )
        for n in range(200)
    )
    with CaptureQueriesContext(connection) as many:
        build_dashboard("week", now=NOW)
    assert len(many) == len(few) <= 20


def test_svg_chart() -> None:
    buckets = [NOW + timedelta(hours=i) for i in range(4)]
    svg = str(
        line_chart(
            title="Runs <all>",
            buckets=buckets,
            series=[Series("p50", [1.0, None, 3.0, 4.0], "#123456")],
        )
    )
    assert svg.count("<svg") == 1 and "Runs &lt;all&gt;" in svg
    assert "<circle" in svg and svg.count("<circle") == 3
    path = svg[svg.index('<path d="') :].split('"')[1]
    assert path.count("M") == 2  # the missing value breaks the line
    assert "p50 at 2026-11-26T12:00:00Z: 1" in svg
    assert '<text x="46" y="17.0" text-anchor="end" class="tick">4</text>' in svg  # top: 4 x 1
    assert [nice_duration_step(s) for s in (0.3, 40, 1000, 90000)] == [0.5, 60, 1800, 172800]
    assert (nice_ceiling(0), nice_ceiling(7), nice_ceiling(120), nice_ceiling(2.1)) == (
        1.0,
        10.0,
        200.0,
        2.5,
    )


def test_dashboard_page_is_linked_and_draws_three_charts(
    runs: dict[str, Any], admin_client: Client
) -> None:
    url = reverse("admin:django_inngest_dashboard")
    app_index = admin_client.get(reverse("admin:app_list", args=("django_inngest",)))
    assert f'href="{url}"' in app_index.content.decode()
    content = admin_client.get(url, {"window": "week"}).content.decode()
    assert content.count('<svg viewBox="0 0 640') == 3
    for chart in ("chart-runs", "chart-durations", "chart-backlog"):
        assert f'id="{chart}"' in content
    assert 'id="slowest-functions"' in content and 'id="failing-functions"' in content
    assert "dash-slow" in content
    one = admin_client.get(url, {"window": "hour", "function": "dash-fast"})
    assert one.context["board"].function_id == "dash-fast"
    assert one.context["board"].window.key == "hour"
    bad = admin_client.get(url, {"window": "year", "function": "nope"})
    assert bad.context["board"].window.key == "day" and bad.context["board"].function_id is None


def test_dashboard_needs_view_permission(client: Client, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:django_inngest_dashboard")).status_code == 403
