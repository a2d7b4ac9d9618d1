"""The console in a real browser: the seed scenario's run page (the README's picture), a
200-step run, a page that refreshes itself until its run ends, the dashboard, the runs list.

Chromium comes from Debian (/usr/bin/chromium); see tests/test_browser.py.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from django_inngest import Event, Inngest, cancel_run
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRegistration, FunctionRun, RunStatus, StepRun
from django_inngest.testing import drain
from tests.test_browser import DOCS, browser, log_in, make_user  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EXAMPLE_PROJECT = Path(__file__).resolve().parent.parent / "example_project"
IMPORT_FN = "newsletter-app-import-all-contacts"
CLEANUP_FN = "newsletter-app-cleanup-cancelled-import"
IMPORT_ID = "bdce1b1b-6e3a-43e6-84c2-2deb559cdde6"


def picture(name: str, tmp_path: Path) -> Path:
    return DOCS / name if os.environ.get("INNGEST_UPDATE_SCREENSHOT") else tmp_path / name


@pytest.fixture
def operator(django_user_model: Any) -> None:
    make_user(
        django_user_model,
        "operator",
        "view_functionrun",
        "cancel_functionrun",
        "view_event",
        "view_steprun",
        "view_functionregistration",
        "view_cancellation",
    )


@pytest.fixture
def newsletter(isolated_registry: Any, settings: Any) -> Iterator[Inngest]:
    """The example project's own functions (example_project/newsletter), loaded for this test:
    its app installed and its Contact table created, then both taken away again."""
    sys.path.insert(0, str(EXAMPLE_PROJECT))
    apps = [*settings.INSTALLED_APPS, "newsletter"]
    try:
        with override_settings(INSTALLED_APPS=apps):
            from newsletter.models import Contact

            with connection.schema_editor() as editor:
                editor.create_model(Contact)
            try:
                sys.modules.pop("newsletter.inngest_functions", None)
                from newsletter.inngest_functions import inngest_client

                yield inngest_client
            finally:
                with connection.schema_editor() as editor:
                    editor.delete_model(Contact)
    finally:
        sys.path.remove(str(EXAMPLE_PROJECT))
        # The model module stays imported (a model is registered once per process); the
        # functions module is imported afresh by the next test, into its own registry.
        sys.modules.pop("newsletter.inngest_functions", None)


def play_seed_scenario(client: Inngest) -> FunctionRun:
    """The seed scenario with real time: an import sleeps between batches; after its second
    batch, contacts/import.cancelled with the same importId cancels it; the cleanup runs."""
    (event_id,) = client.send_sync(
        Event(
            name="contacts/import.requested",
            data={"importId": IMPORT_ID, "batches": 6, "listId": "newsletter-2026"},
            user={"email": "ops@example.com"},
        )
    )
    run = FunctionRun.objects.get(event_id=event_id)
    deadline = time.monotonic() + 15
    while StepRun.objects.filter(run=run, step_id="pause-1").count() == 0:
        assert time.monotonic() < deadline, "the import did not reach its second pause"
        time.sleep(0.1)  # the 1 s pauses are real: the timeline shows real timings
        drain()
    time.sleep(0.6)  # half-way through pause-1
    client.send_sync(Event(name="contacts/import.cancelled", data={"importId": IMPORT_ID}))
    drain()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.cancel_source == "event"
    cleanup = FunctionRun.objects.get(function_id=CLEANUP_FN)
    assert cleanup.status == RunStatus.COMPLETED
    return run


def test_seed_scenario_run_page(
    browser: Browser,  # noqa: F811
    live_server: Any,
    operator: None,
    newsletter: Inngest,
    tmp_path: Path,
) -> None:
    run = play_seed_scenario(newsletter)
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(page, live_server.url, "operator")
    page.goto(f"{live_server.url}/admin/django_inngest/functionrun/{run.run_id}/change/")
    summary = page.locator(".inngest-summary")
    expect(summary.locator(".inngest-badge").first).to_have_text("Cancelled")
    expect(summary.locator(".inngest-cancel-source")).to_have_text("cancel_on event")
    expect(summary.locator(".inngest-cancel-event-link")).to_have_text("contacts/import.cancelled")
    expect(summary.locator(".inngest-cleanup-run")).to_have_text(CLEANUP_FN)
    # The interrupted pause reads Cancelled, in the timeline and the table.
    pause = StepRun.objects.get(run=run, step_id="pause-1")
    expect(page.locator(f"tr.inngest-step[data-step-id='{pause.pk}'] .inngest-badge")).to_have_text(
        "Cancelled"
    )
    expect(page.locator(f".inngest-timeline-bar[data-step-id='{pause.pk}']")).to_have_attribute(
        "data-status", "cancelled"
    )
    expect(page.locator("#inngest-run-live")).to_have_attribute("data-refreshing", "stopped")
    no_sideways_scroll(page)
    page.click("#toggle-nav-sidebar")
    shot = picture("admin-run.png", tmp_path)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000


def no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"


def long_run(steps: int) -> FunctionRun:
    function = FunctionRegistration.objects.create(
        function_id="newsletter-app-sync-list", app_id="newsletter-app", fn_id="sync-list",
        name="Sync list",
    )  # fmt: skip
    start = timezone.now() - timedelta(minutes=20)
    event = StoredEvent.objects.create(
        name="lists/sync.requested", ts=0, received_at=start, data={"listId": "newsletter-2026"}
    )
    run = FunctionRun.objects.create(
        function=function,
        event=event,
        status=RunStatus.FAILED,
        created_at=start,
        started_at=start,
        ended_at=start + timedelta(seconds=steps * 5),
        error={
            "name": "ValueError",
            "message": "row 17 has no email",
            "stack": "Traceback (most recent call last):\n" + "  File 'x.py'\n" * 30 + "x" * 400,
        },
    )
    StepRun.objects.bulk_create(
        StepRun(
            run=run,
            step_id=f"sync-page-{n:03d}-with-a-name-long-enough-to-be-cut-in-the-table",
            position=n,
            kind="run",
            status="Failed" if n == steps - 1 else "Completed",
            attempts=1,
            started_at=start + timedelta(seconds=n * 5),
            ended_at=start + timedelta(seconds=n * 5 + 3),
            output={"rows": [{"email": f"user{i}@example.com"} for i in range(30)]},
        )
        for n in range(steps)
    )
    return run


def test_a_200_step_run_fits_and_keeps_the_summary_first(
    browser: Browser,  # noqa: F811
    live_server: Any,
    operator: None,
) -> None:
    run = long_run(200)
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(page, live_server.url, "operator")
    page.goto(f"{live_server.url}/admin/django_inngest/functionrun/{run.run_id}/change/")
    summary = page.locator(".inngest-summary").bounding_box()
    timeline = page.locator(".inngest-timeline").bounding_box()
    assert summary and timeline and summary["y"] + summary["height"] <= timeline["y"]
    expect(page.locator(".inngest-summary-error")).to_contain_text("row 17 has no email")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    assert height <= 3 * 900, f"{height}px is more than three screens"
    last = StepRun.objects.get(run=run, position=199)
    expect(page.locator(f"tr.inngest-step[data-step-id='{last.pk}']")).to_be_visible()
    expect(page.locator(".inngest-timeline-gap").first).to_contain_text("more steps")
    no_sideways_scroll(page)
    # Long names are cut in the table but readable whole in the tooltip.
    cell = page.locator(f"tr.inngest-step[data-step-id='{last.pk}'] .inngest-step-name code")
    expect(cell).to_have_attribute("title", last.step_id)
    # Everything, on demand.
    page.locator(".inngest-show-all").first.click()
    expect(page.locator("tr.inngest-step")).to_have_count(200)
    no_sideways_scroll(page)


def test_an_active_run_page_refreshes_itself_until_the_run_ends(
    browser: Browser,  # noqa: F811
    live_server: Any,
    operator: None,
    newsletter: Inngest,
) -> None:
    (event_id,) = newsletter.send_sync(
        Event(name="contacts/import.requested", data={"importId": "live", "batches": 3})
    )
    run = FunctionRun.objects.get(event_id=event_id)
    assert run.status == RunStatus.RUNNING
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(page, live_server.url, "operator")
    page.goto(f"{live_server.url}/admin/django_inngest/functionrun/{run.run_id}/change/")
    live = page.locator("#inngest-run-live")
    expect(live).to_have_attribute("data-refreshing", "on")
    page.evaluate("() => { window.notReloaded = true; }")
    expect(page.locator(".inngest-summary .inngest-badge").first).to_have_text("Running")
    # The worker goes on: the page shows the next steps without being reloaded.
    time.sleep(1.1)
    drain()
    # import-batch-1 and pause-1 arrive (import-batch-0 and pause-0 were there).
    expect(page.locator("tr.inngest-step")).to_have_count(4, timeout=10_000)
    expect(live).to_have_attribute("data-refreshing", "on")
    cancel_run(run.run_id, reason="enough")
    expect(page.locator(".inngest-summary .inngest-badge").first).to_have_text(
        "Cancelled", timeout=10_000
    )
    expect(live).to_have_attribute("data-refreshing", "stopped")
    expect(page.locator(".inngest-cancel-button")).to_have_count(0)
    assert page.evaluate("() => window.notReloaded === true")  # swapped in place
    refreshed = live.get_attribute("data-refreshed-at")
    time.sleep(4)  # more than one refresh interval: nothing more is fetched
    assert live.get_attribute("data-refreshed-at") == refreshed


def dashboard_data() -> None:
    functions = [
        FunctionRegistration.objects.create(
            function_id=f"newsletter-app-{name}", app_id="newsletter-app", fn_id=name, name=name
        )
        for name in ("import-all-contacts", "send-digest", "sync-crm")
    ]
    now = timezone.now()
    event = StoredEvent.objects.create(name="contacts/import.requested", ts=0, received_at=now)
    runs = []
    for n in range(600):
        function = functions[n % 3]
        created = now - timedelta(minutes=(n * 37) % (24 * 60))
        seconds = 0.4 + (n % 7) * (1 + 4 * (n % 3)) + (n % 50 == 0) * 120
        status = "Failed" if n % 23 == 0 else "Cancelled" if n % 31 == 0 else "Completed"
        # A burst at 09:00-ish waits in the queue; some runs sleep for an hour and a half.
        queued_for = timedelta(minutes=40) if n % 9 == 0 else timedelta(seconds=0.2)
        if n % 25 == 0:
            seconds = 5400.0
        if created + queued_for > now:
            status, seconds = "Queued", None
        elif seconds is not None and created + timedelta(seconds=seconds) > now:
            status, seconds = "Running", None
        runs.append(
            FunctionRun(
                function=function,
                event=event,
                status=status,
                wait_kind="sleep" if status == "Running" else "",
                created_at=created,
                started_at=None if status == "Queued" else created + queued_for,
                ended_at=None if seconds is None else created + timedelta(seconds=seconds),
            )
        )
    FunctionRun.objects.bulk_create(runs)
    StepRun.objects.bulk_create(
        StepRun(
            run=run,
            step_id="pause",
            position=0,
            kind="sleep",
            status="Sleeping" if run.ended_at is None else "Completed",
            started_at=run.started_at + timedelta(seconds=1),
            ended_at=run.ended_at,
        )
        for n, run in enumerate(runs)
        if n % 25 == 0 and run.started_at is not None
    )


def test_the_dashboard_draws_its_charts(
    browser: Browser,  # noqa: F811
    live_server: Any,
    operator: None,
    tmp_path: Path,
) -> None:
    dashboard_data()
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(page, live_server.url, "operator")
    page.goto(f"{live_server.url}/admin/django_inngest/")
    page.click(".inngest-dashboard-link")
    expect(page.locator("#content h1")).to_have_text("Dashboard")
    charts = page.locator(".inngest-chart svg")
    expect(charts).to_have_count(3)
    for index in range(3):
        box = charts.nth(index).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100
    assert page.locator(".inngest-chart path[data-series]").count() >= 8
    expect(page.locator("[data-total='started']")).to_have_text("600")
    expect(page.locator("#slowest-functions tbody tr")).to_have_count(3)
    page.select_option("select[name=function]", "newsletter-app-sync-crm")
    expect(page.locator("[data-total='started']")).to_have_text("200")
    page.goto(f"{live_server.url}/admin/django_inngest/functionrun/dashboard/?window=day")
    no_sideways_scroll(page)
    page.click("#toggle-nav-sidebar")
    shot = picture("admin-dashboard.png", tmp_path)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000


def test_the_runs_list_shows_its_times_at_1400_px(
    browser: Browser,  # noqa: F811
    live_server: Any,
    operator: None,
) -> None:
    run = long_run(3)
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(page, live_server.url, "operator")  # lands on the runs list
    for column in ("started", "ended", "duration", "error_summary"):
        header = page.locator(f"#result_list th.column-{column}")
        expect(header).to_be_visible()
        box = header.bounding_box()
        assert box and box["x"] + box["width"] <= 1400, column
    row = page.locator("#result_list tbody tr", has=page.locator(f"input[value='{run.run_id}']"))
    expect(row.locator(".inngest-error-cell")).to_contain_text("ValueError: row 17 has no email")
    no_sideways_scroll(page)
