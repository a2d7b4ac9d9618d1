"""The run page: how steps ended, the summary above the timeline, long runs, the live fragment."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_inngest import Context, Event, Inngest, NonRetriableError, TriggerEvent, cancel_run
from django_inngest.models import Event as StoredEvent
from django_inngest.models import FunctionRegistration, FunctionRun, RunStatus, StepRun
from django_inngest.testing import drain
from tests.helpers import make_due

pytestmark = pytest.mark.django_db(transaction=True)

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)"


@pytest.fixture
def app(isolated_registry: Any) -> Inngest:
    client = Inngest(app_id="page-app")

    @client.create_function(fn_id="napper", trigger=TriggerEvent(event="page/nap"))
    def napper(ctx: Context) -> str:
        ctx.step.run("prepare-a-rather-long-step-name-that-the-timeline-must-cut", lambda: 1)
        ctx.step.sleep("nap", timedelta(minutes=10))
        return "rested"

    @client.create_function(fn_id="approver", trigger=TriggerEvent(event="page/request"))
    def approver(ctx: Context) -> bool:
        approval = ctx.step.wait_for_event(
            "approval", event="page/approved", timeout=timedelta(minutes=5), if_exp=None
        )
        return approval is not None

    @client.create_function(fn_id="broken", trigger=TriggerEvent(event="page/broken"))
    def broken(ctx: Context) -> None:
        raise NonRetriableError("config missing before any step")

    return client


def send(client: Inngest, name: str, **data: Any) -> FunctionRun:
    (event_id,) = client.send_sync(Event(name=name, data=data))
    return FunctionRun.objects.get(event_id=event_id)


def page(client: Client, run: FunctionRun, **params: str) -> str:
    url = reverse("admin:django_inngest_functionrun_change", args=(run.run_id,))
    response = client.get(url, params)
    assert response.status_code == 200
    return str(response.content.decode())


def step_row(content: str, step: StepRun) -> str:
    match = re.search(rf'<tr class="inngest-step" data-step-id="{step.pk}".*?</tr>', content, re.S)
    assert match, f"no row for {step.step_id}"
    return match.group(0)


# -- how steps ended ------------------------------------------------------------------------


def test_a_cancelled_runs_sleep_shows_cancelled_at_the_runs_end(
    app: Inngest, admin_client: Client
) -> None:
    run = send(app, "page/nap")
    cancel_run(run.run_id, reason="not needed")
    run.refresh_from_db()
    nap = StepRun.objects.get(run=run, step_id="nap")
    # The engine's status is untouched; the cancel recorded when the sleep stopped.
    assert nap.status == "Sleeping" and nap.ended_at == run.ended_at
    row = step_row(page(admin_client, run), nap)
    assert "Cancelled" in row and "Sleeping" not in row and "until" not in row
    ended = re.findall(rf'<time datetime="({ISO})">', row)
    assert ended[-1] == run.ended_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert "…" not in row  # a duration, not the "still going" ellipsis

    steps = admin_client.get(f"/v1/runs/{run.run_id}/steps").json()["data"]
    api_nap = next(step for step in steps if step["step_id"] == "nap")
    assert api_nap["status"] == "Cancelled"
    assert api_nap["ended_at"] == run.ended_at.isoformat().replace("+00:00", "Z")


def test_a_wait_that_timed_out_says_so_and_a_match_links_the_event(
    app: Inngest, admin_client: Client
) -> None:
    timed_out = send(app, "page/request")
    make_due(timed_out)
    drain()
    matched = send(app, "page/request")
    (approval_id,) = app.send_sync(Event(name="page/approved", data={"by": "ada"}))
    drain()
    for run in (timed_out, matched):
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED
    wait = StepRun.objects.get(run=timed_out)
    assert wait.status == "Completed" and wait.output is None
    assert "Timed out" in step_row(page(admin_client, timed_out), wait)

    hit = StepRun.objects.get(run=matched)
    row = step_row(page(admin_client, matched), hit)
    event_url = reverse("admin:django_inngest_event_change", args=(approval_id,))
    assert "Completed" in row and "Timed out" not in row
    assert f'href="{event_url}"' in row and "page/approved" in row

    api = admin_client.get(f"/v1/runs/{timed_out.run_id}/steps").json()["data"]
    assert api[0]["status"] == "TimedOut"


def test_a_run_that_failed_before_its_first_step_shows_the_error_in_the_steps(
    app: Inngest, admin_client: Client
) -> None:
    run = send(app, "page/broken")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and not run.steps.exists()
    content = page(admin_client, run)
    steps_section = content[content.index('class="module inngest-steps"') :]
    assert "No steps yet." not in content
    assert "config missing before any step" in steps_section[:4000]


def test_times_have_one_format_and_the_durations_agree(app: Inngest, admin_client: Client) -> None:
    run = send(app, "page/nap")
    cancel_run(run.run_id)
    run.refresh_from_db()
    content = page(admin_client, run)
    engine = content[content.index("Engine state") :]
    # The engine block's times (dispatched_at here) in the same format as the summary's.
    assert re.findall(ISO, engine)
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", content)  # no second format anywhere
    took = re.search(r'data-duration="([^"]+)">took ([^<]+)<', content)
    assert took and took.group(1) == took.group(2)
    run_row = re.search(
        r'inngest-timeline-row--run".*?inngest-timeline-duration">([^<]+)<', content, re.S
    )
    assert run_row and run_row.group(1) == took.group(1)


def test_long_step_names_can_be_read_whole(app: Inngest, admin_client: Client) -> None:
    run = send(app, "page/nap")
    content = page(admin_client, run)
    name = "prepare-a-rather-long-step-name-that-the-timeline-must-cut"
    assert f'title="{name} (step.run)"' in content  # the timeline label's tooltip
    assert f'<code title="{name}">{name}</code>' in content  # and the table's


# -- the page's layout ----------------------------------------------------------------------


def test_summary_comes_before_the_timeline_with_the_cancellation(
    app: Inngest, admin_client: Client
) -> None:
    run = send(app, "page/nap")
    cancel_run(run.run_id, reason="duplicate import")
    run.refresh_from_db()
    content = page(admin_client, run)
    summary = content.index('class="module inngest-summary"')
    assert summary < content.index('class="module inngest-timeline"')
    assert summary < content.index('class="module inngest-steps"')
    block = content[summary : content.index('class="module inngest-timeline"')]
    assert "Python" in block and "duplicate import" in block
    assert "page/nap" in block and "page-app-napper" in block
    system = StoredEvent.objects.get(name="inngest/function.cancelled")
    assert reverse("admin:django_inngest_event_change", args=(system.pk,)) in block


def loop_run(
    steps: int, *, failing_at: int | None = None, waits: dict[int, Any] | None = None
) -> FunctionRun:
    """A run with many steps, written directly: the engine would take minutes to make one."""
    function = FunctionRegistration.objects.create(
        function_id="page-app-loop", app_id="page-app", fn_id="loop", name="Loop"
    )
    start = timezone.now() - timedelta(minutes=10)
    event = StoredEvent.objects.create(
        name="page/loop", ts=0, received_at=start, data={"importId": "loop-1"}
    )
    failed = failing_at is not None
    run = FunctionRun.objects.create(
        function=function,
        event=event,
        status=RunStatus.FAILED if failed else RunStatus.COMPLETED,
        created_at=start,
        started_at=start,
        ended_at=start + timedelta(seconds=steps + 1),
        error={"name": "ValueError", "message": "row 17 is bad"} if failed else None,
    )
    StepRun.objects.bulk_create(
        StepRun(
            run=run,
            step_id=f"import-batch-{n}",
            position=n,
            kind="wait" if n in (waits or {}) else "run",
            status="Failed" if n == failing_at else "Completed",
            attempts=1,
            started_at=start + timedelta(seconds=n),
            ended_at=start + timedelta(seconds=n + 0.5),
            # A wait's output is the matched event, or None (stored as SQL NULL) if it timed out.
            output=(waits or {}).get(n, n),
            error={"name": "ValueError", "message": "row 17 is bad"} if n == failing_at else None,
        )
        for n in range(steps)
    )
    return run


def test_a_200_step_run_shows_the_summary_the_failing_step_and_the_last_steps(
    admin_client: Client,
) -> None:
    run = loop_run(200, failing_at=120)
    content = page(admin_client, run)
    rows = re.findall(r'<tr class="inngest-step" data-step-id="\d+"', content)
    assert 15 <= len(rows) <= 25  # head, tail and the failing step, not 200
    names = set(re.findall(r"<code title=\"(import-batch-\d+)\">", content))
    assert {"import-batch-0", "import-batch-120", "import-batch-199"} <= names
    assert "import-batch-60" not in names
    assert "180 more steps" not in content and "more steps" in content
    assert content.index("row 17 is bad") < content.index('class="module inngest-timeline"')

    everything = page(admin_client, run, steps="all")
    assert len(re.findall(r'<tr class="inngest-step" data-step-id="\d+"', everything)) == 200


def test_a_wait_that_timed_out_is_shown_in_a_long_run_and_a_matched_one_is_not(
    admin_client: Client,
) -> None:
    run = loop_run(200, waits={80: None, 90: {"name": "page/approved", "data": {}}})
    names = set(re.findall(r"<code title=\"(import-batch-\d+)\">", page(admin_client, run)))
    assert "import-batch-80" in names  # timed out: worth seeing wherever it is
    assert "import-batch-90" not in names  # an ordinary, matched wait is folded


def test_a_few_steps_are_all_shown(admin_client: Client) -> None:
    content = page(admin_client, loop_run(40))
    assert len(re.findall(r'<tr class="inngest-step" data-step-id="\d+"', content)) == 40
    assert "more steps" not in content


# -- the live fragment ----------------------------------------------------------------------


def test_live_fragment_of_an_active_run_and_of_an_ended_one(
    app: Inngest, admin_client: Client
) -> None:
    run = send(app, "page/nap")
    live = reverse("admin:django_inngest_functionrun_live", args=(run.run_id,))
    content = page(admin_client, run)
    assert f'data-live-url="{live}"' in content and "run_live.js" in content
    fragment = admin_client.get(live)
    assert fragment.status_code == 200 and "no-store" in fragment["Cache-Control"]
    text = fragment.content.decode()
    assert 'data-active="true"' in text and "<html" not in text
    assert text.index("inngest-summary") < text.index("inngest-timeline")
    cancel_run(run.run_id)
    assert 'data-active="false"' in admin_client.get(live).content.decode()


def test_live_fragment_needs_view_permission(
    app: Inngest, client: Client, django_user_model: Any
) -> None:
    run = send(app, "page/nap")
    live = reverse("admin:django_inngest_functionrun_live", args=(run.run_id,))
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(live).status_code == 403
    missing = reverse("admin:django_inngest_functionrun_live", args=("01" + "A" * 24,))
    assert client.get(missing).status_code in (403, 404)
