"""The admin in a real browser: log in, cancel a sleeping run, read its timeline, check permissions.

Chromium comes from Debian (/usr/bin/chromium); Playwright never downloads a browser here. The
test fails, rather than skips, when Chromium is missing, naming the command that installs it;
``make test`` installs it when it can.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect, sync_playwright

from django_inngest import Context, Event, Inngest, TriggerEvent
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRun, RunStatus, StepRun, WaitKind

# Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls from a
# thread with a running loop. The ORM calls below are ordinary blocking test code.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-background-networking",  # the network is closed: no update or sync pings
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The README's pictures. Tests write them only when asked (INNGEST_UPDATE_SCREENSHOT=1), so
#: that running the suite does not dirty the work tree; otherwise into the test's tmp_path.
DOCS = Path(__file__).resolve().parent.parent / "docs"
SCREENSHOT = DOCS / "admin-run.png"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        sudo = "" if os.geteuid() == 0 else "sudo "
        pytest.fail(
            f"{CHROMIUM} is missing. Install Debian's Chromium with: "
            f"{sudo}apt-get update && {sudo}apt-get install -y chromium "
            "(`make test` does this itself when it runs as root or with passwordless sudo)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # While Playwright's loop runs, asgiref keeps Django's connections in a separate,
            # context-local store; close them here, or the test database cannot be dropped.
            connections.close_all()


@pytest.fixture
def napper(isolated_registry: Any) -> Inngest:
    client = Inngest(app_id="newsletter-app")

    @client.create_function(
        fn_id="import-contacts",
        name="Import contacts",
        trigger=TriggerEvent(event="contacts/import.requested"),
    )
    def import_contacts(ctx: Context) -> str:
        ctx.step.run("load-contacts", lambda: {"contacts": 250})
        ctx.step.sleep("pause", timedelta(minutes=10))
        return "imported"

    return client


def make_user(django_user_model: Any, username: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="django_inngest", codename__in=codenames)
    )
    return user


def start_import(client: Inngest, import_id: str) -> FunctionRun:
    (event_id,) = client.send_sync(
        Event(name="contacts/import.requested", data={"importId": import_id})
    )
    run = FunctionRun.objects.get(event_id=event_id)
    assert run.status == RunStatus.RUNNING and run.wait_kind == WaitKind.SLEEP
    return run


def showcase_run(template: FunctionRun) -> FunctionRun:
    """A run with a story for the screenshot: steps, a failed attempt then a retry, sleeps.

    Its rows are written directly, with timings spread over a minute, because the engine in
    tests runs steps in microseconds and retries after 10 ms: true, but unreadable as a picture.
    """
    now = timezone.now()

    def ago(seconds: float) -> Any:
        return now - timedelta(seconds=seconds)

    event = StoredEvent.objects.create(
        name="contacts/import.requested",
        data={"importId": "bdce1b1b-6e3a-43e6-84c2-2deb559cdde6", "listId": "newsletter-2026"},
        user={"email": "ops@example.com"},
        ts=int(ago(48).timestamp() * 1000),
        received_at=ago(48),
    )
    run = FunctionRun.objects.create(
        function_id=template.function_id,
        event=event,
        status=RunStatus.RUNNING,
        wait_kind=WaitKind.SLEEP,
        ready_at=now + timedelta(seconds=12),
        created_at=ago(48),
        started_at=ago(47.6),
    )

    def attempt(number: int, start: float, end: float, error: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "attempt": number,
            "started_at": ago(start).isoformat(),
            "ended_at": ago(end).isoformat(),
        }
        if error:
            entry["error"] = {
                "error": f"TimeoutError: {error}",
                "message": error,
                "name": "TimeoutError",
            }
        return entry

    steps: list[dict[str, Any]] = [
        {
            "step_id": "load-contacts",
            "kind": "run",
            "start": 47.5,
            "end": 45.3,
            "log": [attempt(1, 47.5, 45.3)],
            "output": {"contacts": 250},
        },
        {
            "step_id": "enrich-batch-0",
            "kind": "run",
            "start": 45.2,
            "end": 37.2,
            "log": [
                attempt(1, 45.2, 43.9, "CRM did not answer within 1.2s"),
                attempt(2, 39.9, 37.2),
            ],
            "output": {"enriched": 100},
        },
        {
            "step_id": "import-batch-0",
            "kind": "run",
            "start": 37.1,
            "end": 33.0,
            "log": [attempt(1, 37.1, 33.0)],
            "output": {"imported": 100},
        },
        {"step_id": "pause-0", "kind": "sleep", "start": 33.0, "end": 23.0, "wake": 23.0},
        {
            "step_id": "import-batch-1",
            "kind": "run",
            "start": 22.9,
            "end": 18.4,
            "log": [attempt(1, 22.9, 18.4)],
            "output": {"imported": 150},
        },
        {
            "step_id": "notify-owner",
            "kind": "send",
            "start": 18.3,
            "end": 18.1,
            "output": {"ids": ["01KQ6V3Z1M6YJ8W9R4TZC2QH5N"]},
        },
        {"step_id": "pause-1", "kind": "sleep", "start": 18.1, "end": None, "wake": -12.0},
    ]
    for position, spec in enumerate(steps):
        pending = spec["end"] is None
        StepRun.objects.create(
            run=run,
            step_id=spec["step_id"],
            position=position,
            kind=spec["kind"],
            status="Sleeping" if pending else "Completed",
            attempts=len(spec.get("log", [])),
            attempt_log=spec.get("log", []),
            output=spec.get("output"),
            started_at=ago(spec["start"]),
            ended_at=None if pending else ago(spec["end"]),
            wake_at=ago(spec["wake"]) if "wake" in spec else None,
        )
    return run


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/django_inngest/functionrun/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#content h1")).to_contain_text("function run")


def run_row(page: Page, run: FunctionRun) -> Any:
    return page.locator("#result_list tbody tr", has=page.locator(f"input[value='{run.run_id}']"))


def test_cancel_a_sleeping_run_in_the_browser(
    browser: Browser, live_server: Any, django_user_model: Any, napper: Inngest, tmp_path: Path
) -> None:
    # All the data first: the server thread reads it from the shared (file or PostgreSQL) DB.
    make_user(django_user_model, "operator", "view_functionrun", "cancel_functionrun", "view_event")
    make_user(django_user_model, "viewer", "view_functionrun", "rerun_functionrun")
    target = start_import(napper, "first")
    spare = start_import(napper, "second")
    showcase = showcase_run(target)
    step_count = StepRun.objects.filter(run=target).count()
    assert step_count == 2

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    # 1. Log in through the real admin login form.
    log_in(page, live_server.url, "operator")

    # 2. Find the sleeping run in the list and cancel it with the action.
    row = run_row(page, target)
    expect(row.locator(".inngest-badge")).to_have_text("Running")
    expect(row).to_contain_text("sleeping until")
    row.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "cancel_selected")
    page.click("button[name=index]")

    # 3. A confirmation page says what will be cancelled and asks why; nothing is cancelled yet.
    expect(page.locator(".inngest-cancel-run")).to_have_count(1)
    expect(page.locator(".inngest-cancel-run")).to_contain_text(target.run_id)
    expect(page.locator(".inngest-cancel-run")).to_contain_text("sleeping until")
    target.refresh_from_db()
    assert target.status == RunStatus.RUNNING
    page.fill("textarea[name=reason]", "Imported the wrong list")
    page.click(".inngest-confirm")

    # 4. The list now shows it Cancelled, and says so.
    expect(page.locator(".messagelist .success")).to_have_text("1 run was cancelled.")
    expect(run_row(page, target).locator(".inngest-badge")).to_have_text("Cancelled")
    expect(run_row(page, spare).locator(".inngest-badge")).to_have_text("Running")
    target.refresh_from_db()
    assert (target.status, target.cancel_source, target.cancel_reason, target.cancel_actor) == (
        RunStatus.CANCELLED,
        "admin",
        "Imported the wrong list",
        "operator",
    )

    # 5. Its page says who cancelled it and why, draws a bar (at least) per step, and links
    # back to the triggering event.
    run_row(page, target).locator("th a").click()
    expect(page.locator(".inngest-cancel-reason")).to_have_text("Imported the wrong list")
    expect(page.locator(".inngest-cancel-actor")).to_have_text("operator")
    timeline = page.locator(".inngest-timeline")
    expect(timeline).to_be_visible()
    assert page.locator(".inngest-timeline-bar").count() >= step_count
    for step in StepRun.objects.filter(run=target):
        expect(
            page.locator(f".inngest-timeline-bar[data-step-id='{step.pk}']").first
        ).to_be_visible()
    expect(page.locator(".inngest-timeline-row--run .inngest-timeline-bar").last).to_have_attribute(
        "data-status", "cancelled"
    )
    expect(page.locator(".inngest-cancel-button")).to_have_count(0)  # it has ended
    page.click(".inngest-summary .inngest-trigger-link")
    expect(page.locator("#content h1")).to_contain_text("event")

    # The showcase run, for docs/admin-run.png: several steps, a retried step and sleeps.
    page.goto(f"{live_server.url}/admin/django_inngest/functionrun/{showcase.run_id}/change/")
    bars = page.locator(".inngest-timeline-bar")
    assert bars.count() >= StepRun.objects.filter(run=showcase).count()
    expect(page.locator(".inngest-timeline-bar[data-status='failed']")).to_have_count(1)
    expect(page.locator(".inngest-timeline-bar--retry-gap")).to_have_count(1)
    expect(page.locator(".inngest-timeline-bar--sleep")).to_have_count(2)
    expect(page.locator(".inngest-timeline-bar--sleep.is-open")).to_have_count(1)
    bar_box = page.locator(".inngest-timeline-row--run .inngest-timeline-bar--run").bounding_box()
    assert bar_box is not None and bar_box["width"] > 300  # the CSS loaded and laid it out
    # The summary comes first, above the timeline.
    summary_box = page.locator(".inngest-summary").bounding_box()
    timeline_box = page.locator(".inngest-timeline").bounding_box()
    assert summary_box and timeline_box and summary_box["y"] < timeline_box["y"]

    # The Cancel button on the page of another sleeping run: the same confirmation. "No, take
    # me back" leaves it running; confirming without a reason cancels it.
    page.goto(f"{live_server.url}/admin/django_inngest/functionrun/{spare.run_id}/change/")
    page.click(".inngest-cancel-button")
    expect(page.locator(".inngest-cancel-run")).to_contain_text(spare.run_id)
    page.click(".inngest-back")
    expect(page.locator(".inngest-cancel-button")).to_have_count(1)
    spare.refresh_from_db()
    assert spare.status == RunStatus.RUNNING
    page.click(".inngest-cancel-button")
    page.click(".inngest-confirm")
    expect(page.locator(".messagelist .success")).to_have_text("The run was cancelled.")
    expect(page.locator(".inngest-cancel-button")).to_have_count(0)
    spare.refresh_from_db()
    assert (spare.status, spare.cancel_reason, spare.cancel_actor) == (
        RunStatus.CANCELLED,
        "",
        "operator",
    )
    context.close()

    # 6. A user without the cancel permission: no cancel action, no Cancel button.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, live_server.url, "viewer")
    options = page.locator("select[name=action] option")
    values = [options.nth(i).get_attribute("value") for i in range(options.count())]
    assert "rerun_selected" in values and "cancel_selected" not in values
    page.goto(f"{live_server.url}/admin/django_inngest/functionrun/{showcase.run_id}/change/")
    expect(page.locator(".inngest-timeline")).to_be_visible()
    expect(page.locator(".inngest-cancel-button")).to_have_count(0)
    expect(page.get_by_text("Cancel run")).to_have_count(0)
    context.close()
    showcase.refresh_from_db()
    assert showcase.status == RunStatus.RUNNING


def test_bulk_cancel_with_a_reason_in_the_browser(
    browser: Browser, live_server: Any, django_user_model: Any, napper: Inngest
) -> None:
    make_user(
        django_user_model, "operator", "view_functionrun", "cancel_functionrun", "view_cancellation"
    )
    runs = [start_import(napper, name) for name in ("a", "b")]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, live_server.url, "operator")
    page.goto(f"{live_server.url}/admin/django_inngest/cancellation/bulk-cancel/")
    page.select_option("select[name=function]", "newsletter-app-import-contacts")
    page.fill("textarea[name=if_exp]", "event.data.importId == 'a'")
    page.fill("textarea[name=reason]", "Superseded by import b")
    page.click("input[name=preview]")
    # The preview is the confirmation: what matches, and the reason kept in its field.
    expect(page.locator(".inngest-preview-count")).to_have_text("1 run matches")
    expect(page.locator("textarea[name=reason]")).to_have_value("Superseded by import b")
    page.click("input[name=confirm]")
    expect(page.locator(".messagelist .success")).to_contain_text("1 run was cancelled")
    context.close()
    first, second = (FunctionRun.objects.get(pk=run.pk) for run in runs)
    assert (first.status, first.cancel_reason, first.cancel_actor) == (
        RunStatus.CANCELLED,
        "Superseded by import b",
        "operator",
    )
    assert second.status == RunStatus.RUNNING
