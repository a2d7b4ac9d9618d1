"""The admin: read-only pages, permissions, the cancel and rerun actions, the bulk form."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_inngest import Context, Event, Inngest, NonRetriableError, TriggerEvent
from django_inngest.admin.base import STATUS_CSS
from django_inngest.models import (
    Cancellation,
    FunctionRegistration,
    FunctionRun,
    RunStatus,
    StepRun,
)
from django_inngest.models import Event as StoredEvent
from django_inngest.testing import drain

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "admin:django_inngest_functionrun_changelist"
BULK = "admin:django_inngest_cancellation_bulk_cancel"


@pytest.fixture
def app(isolated_registry: Any) -> Inngest:
    client = Inngest(app_id="admin-app")
    attempts: dict[str, int] = {}

    @client.create_function(fn_id="napper", name="Napper", trigger=TriggerEvent(event="admin/nap"))
    def napper(ctx: Context) -> str:
        ctx.step.run("prepare", lambda: {"ready": True})
        ctx.step.sleep("nap", timedelta(minutes=10))
        return "rested"

    @client.create_function(fn_id="quick", trigger=TriggerEvent(event="admin/quick"))
    def quick(ctx: Context) -> dict[str, bool]:
        return ctx.step.run("only", lambda: {"ok": True})  # type: ignore[no-any-return]

    def flaky_once() -> str:
        attempts["flaky"] = attempts.get("flaky", 0) + 1
        if attempts["flaky"] == 1:
            raise ValueError("first attempt fails")
        return "ok"

    @client.create_function(fn_id="flaky", trigger=TriggerEvent(event="admin/flaky"))
    def flaky(ctx: Context) -> str:
        return ctx.step.run("flaky-step", flaky_once)  # type: ignore[no-any-return]

    @client.create_function(fn_id="broken", trigger=TriggerEvent(event="admin/broken"))
    def broken(ctx: Context) -> None:
        raise NonRetriableError("it is broken")

    return client


def send(client: Inngest, name: str, **data: Any) -> FunctionRun:
    (event_id,) = client.send_sync(Event(name=name, data=data, id=data.pop("sender_id", "")))
    return FunctionRun.objects.get(event_id=event_id)


def settle() -> None:
    """Let retry backoffs (10 ms in tests) elapse and advance the runs until none is ready."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        drain()
        if not FunctionRun.objects.filter(wait_kind="retry").exists():
            return
        time.sleep(0.02)


def staff(django_user_model: Any, username: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="django_inngest", codename__in=codenames)
    )
    return user


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def run_url(run: FunctionRun, view: str = "change") -> str:
    return reverse(f"admin:django_inngest_functionrun_{view}", args=(run.run_id,))


def action(client: Client, name: str, *runs: FunctionRun) -> Any:
    return client.post(
        reverse(RUNS),
        {"action": name, "_selected_action": [r.run_id for r in runs], "index": 0},
        follow=True,
    )


def confirm_cancel(client: Client, *runs: FunctionRun, reason: str = "") -> Any:
    """The second step of the cancel action: the confirmation page's form, posted."""
    return client.post(
        reverse(RUNS),
        {
            "action": "cancel_selected",
            "_selected_action": [r.run_id for r in runs],
            "post": "yes",
            "reason": reason,
        },
        follow=True,
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def action_choices(response: Any) -> list[str]:
    form = response.context.get("action_form")
    return [] if form is None else [name for name, _ in form.fields["action"].choices]


# -- pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["functionrun", "steprun", "event", "functionregistration", "cancellation", "listener"]
)
def test_changelists_and_detail_pages_render(
    app: Inngest, admin_client: Client, model: str
) -> None:
    send(app, "admin/nap")
    send(app, "admin/quick")
    from django.apps import apps

    objects = apps.get_model("django_inngest", model).objects
    if model == "cancellation":
        bulk_cancel(admin_client, "admin-app-napper")
        assert Cancellation.objects.exists()
    response = admin_client.get(reverse(f"admin:django_inngest_{model}_changelist"))
    assert response.status_code == 200
    obj = objects.first()
    if obj is not None:
        detail = admin_client.get(reverse(f"admin:django_inngest_{model}_change", args=(obj.pk,)))
        assert detail.status_code == 200


def test_admin_index_lists_the_models_with_verbose_names(admin_client: Client) -> None:
    content = admin_client.get(reverse("admin:index")).content.decode()
    for name in (
        "Function runs",
        "Steps",
        "Events",
        "Functions",
        "Bulk cancellations",
        "Listeners",
    ):
        assert name in content


@pytest.mark.parametrize(
    "model", ["functionrun", "steprun", "event", "functionregistration", "cancellation", "listener"]
)
def test_nothing_can_be_added_or_deleted(admin_client: Client, model: str) -> None:
    assert admin_client.get(reverse(f"admin:django_inngest_{model}_add")).status_code == 403
    response = admin_client.get(reverse(f"admin:django_inngest_{model}_changelist"))
    assert "delete_selected" not in action_choices(response)


def test_run_page_is_read_only(app: Inngest, admin_client: Client) -> None:
    run = send(app, "admin/quick")
    response = admin_client.get(run_url(run))
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in response.content.decode()
    assert admin_client.post(run_url(run), {"status": "Failed"}).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_every_run_status_has_a_badge() -> None:
    assert set(STATUS_CSS) == set(RunStatus)


def test_run_list_shows_status_badges_and_what_a_running_run_waits_for(
    app: Inngest, admin_client: Client
) -> None:
    sleeping = send(app, "admin/nap")
    done = send(app, "admin/quick")
    content = admin_client.get(reverse(RUNS)).content.decode()
    assert sleeping.run_id in content and done.run_id in content
    assert 'inngest-badge--running">Running</span>' in content
    assert 'inngest-badge--completed">Completed</span>' in content
    assert "sleeping until" in content


def test_search_by_run_id_event_id_and_sender_id(app: Inngest, admin_client: Client) -> None:
    first = send(app, "admin/quick", sender_id="order-42")
    second = send(app, "admin/quick")

    def found(term: str) -> set[str]:
        response = admin_client.get(reverse(RUNS), {"q": term})
        return {run.run_id for run in response.context["cl"].result_list}

    assert found(first.run_id) == {first.run_id}
    assert found(first.run_id.lower()) == {first.run_id}
    assert found(second.event_id) == {second.run_id}
    assert found("order-42") == {first.run_id}
    assert found("nothing") == set()


def test_filters_by_status_and_function(app: Inngest, admin_client: Client) -> None:
    sleeping = send(app, "admin/nap")
    done = send(app, "admin/quick")

    def listed(**params: str) -> set[str]:
        response = admin_client.get(reverse(RUNS), params)
        assert response.status_code == 200
        return {run.run_id for run in response.context["cl"].result_list}

    assert listed(status__exact="Running") == {sleeping.run_id}
    assert listed(status__exact="Completed") == {done.run_id}
    assert listed(function__function_id__exact="admin-app-quick") == {done.run_id}
    today = timezone.localtime()
    assert listed(created_at__year=str(today.year)) == {sleeping.run_id, done.run_id}


def test_event_search_and_filters(app: Inngest, admin_client: Client) -> None:
    run = send(app, "admin/quick", sender_id="order-7")
    send(app, "admin/nap")
    url = reverse("admin:django_inngest_event_changelist")
    for term in ("admin/quick", run.event_id, "order-7"):
        results = admin_client.get(url, {"q": term}).context["cl"].result_list
        assert [e.internal_id for e in results] == [run.event_id]
    names = {e.name for e in admin_client.get(url, {"name": "admin/nap"}).context["cl"].result_list}
    assert names == {"admin/nap"}


# -- the run page ---------------------------------------------------------------------------


def test_run_page_shows_timeline_steps_output_and_event_link(
    app: Inngest, admin_client: Client
) -> None:
    run = send(app, "admin/flaky")
    settle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    content = admin_client.get(run_url(run)).content.decode()
    step = StepRun.objects.get(run=run)
    assert 'class="module inngest-timeline"' in content
    bars = re.findall(r'class="inngest-timeline-bar [^"]*"\s+data-step-id="(\w+)"', content)
    assert bars.count("run") >= 1 and bars.count(str(step.pk)) == 3  # fail, backoff, success
    assert 'data-status="failed"' in content and 'data-status="completed"' in content
    assert "flaky-step" in content and "2 attempts" in content
    assert "ValueError: first attempt fails" in content  # the failed attempt's error, as a tooltip
    event_url = reverse("admin:django_inngest_event_change", args=(run.event_id,))
    assert f'href="{event_url}"' in content
    assert "&quot;ok&quot;" in content  # the pretty JSON output
    assert "Cancel run" not in content  # ended


def test_failed_run_page_shows_the_error(app: Inngest, admin_client: Client) -> None:
    run = send(app, "admin/broken")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    content = admin_client.get(run_url(run)).content.decode()
    assert "NonRetriableError: it is broken" in content
    assert 'class="inngest-stack"' in content


def test_event_page_links_to_its_runs_and_back(app: Inngest, admin_client: Client) -> None:
    run = send(app, "admin/quick", who="ada")
    event_page = admin_client.get(
        reverse("admin:django_inngest_event_change", args=(run.event_id,))
    )
    content = event_page.content.decode()
    assert f'href="{run_url(run)}"' in content
    assert "&quot;who&quot;: &quot;ada&quot;" in content
    run_page = admin_client.get(run_url(run)).content.decode()
    assert reverse("admin:django_inngest_event_change", args=(run.event_id,)) in run_page


def test_invoked_and_rerun_links(app: Inngest, admin_client: Client) -> None:
    original = send(app, "admin/quick")
    admin_client.post(
        reverse(RUNS), {"action": "rerun_selected", "_selected_action": [original.run_id]}
    )
    rerun = FunctionRun.objects.get(original_run_id=original.run_id)
    assert "Related runs" in admin_client.get(run_url(original)).content.decode()
    assert f'href="{run_url(rerun)}"' in admin_client.get(run_url(original)).content.decode()
    assert f'href="{run_url(original)}"' in admin_client.get(run_url(rerun)).content.decode()


# -- cancelling -----------------------------------------------------------------------------


def test_cancel_action_asks_for_confirmation_then_cancels_with_a_reason(
    app: Inngest, admin_client: Client
) -> None:
    run = send(app, "admin/nap")
    assert run.status == RunStatus.RUNNING
    page = action(admin_client, "cancel_selected", run)
    content = page.content.decode()
    # The confirmation says what will be cancelled, and nothing has been cancelled yet.
    assert page.templates[0].name == "django_inngest/admin/cancel_confirmation.html"
    assert run.run_id in content and "admin-app-napper" in content
    assert 'name="reason"' in content and "Yes, cancel the run" in content
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    response = confirm_cancel(admin_client, run, reason="  duplicate import  ")
    assert messages_of(response) == ["1 run was cancelled."]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert (run.cancel_source, run.cancel_reason, run.cancel_actor) == (
        "admin",
        "duplicate import",
        "admin",
    )
    content = admin_client.get(run_url(run)).content.decode()
    assert "duplicate import" in content and "Django admin" in content
    assert '<dd class="inngest-cancel-actor">admin</dd>' in content


def test_cancel_confirmation_refuses_a_reason_too_long(app: Inngest, admin_client: Client) -> None:
    run = send(app, "admin/nap")
    response = confirm_cancel(admin_client, run, reason="x" * 1001)
    assert "at most 1000 characters" in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_cancel_action_reports_each_outcome(app: Inngest, admin_client: Client) -> None:
    running = [send(app, "admin/nap") for _ in range(2)]
    already = send(app, "admin/nap")
    confirm_cancel(admin_client, already)
    ended = send(app, "admin/quick")
    page = action(admin_client, "cancel_selected", *running, already, ended)
    content = page.content.decode()
    assert 'data-active-count="2"' in content and 'data-ended-count="2"' in content
    assert "Yes, cancel 2 runs" in content
    response = confirm_cancel(admin_client, *running, already, ended)
    assert sorted(messages_of(response)) == sorted(
        [
            "2 runs were cancelled.",
            "1 run was already cancelled.",
            "1 run had already ended and was not cancelled.",
        ]
    )
    ended.refresh_from_db()
    assert ended.status == RunStatus.COMPLETED


def test_cancel_confirmation_of_only_ended_runs_offers_nothing(
    app: Inngest, admin_client: Client
) -> None:
    ended = send(app, "admin/quick")
    content = action(admin_client, "cancel_selected", ended).content.decode()
    assert "Nothing to cancel" in content and "inngest-confirm" not in content


def test_cancel_button_confirms_cancels_and_redirects_back(
    app: Inngest, django_user_model: Any
) -> None:
    operator = client_for(
        staff(django_user_model, "operator", "view_functionrun", "cancel_functionrun")
    )
    run = send(app, "admin/nap")
    page = operator.get(run_url(run)).content.decode()
    assert f'href="{run_url(run, "cancel")}"' in page and "Cancel run" in page
    confirmation = operator.get(run_url(run, "cancel"))
    assert confirmation.status_code == 200
    assert run.run_id in confirmation.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # looking is not cancelling
    response = operator.post(run_url(run, "cancel"), {"reason": "wrong list"})
    assert response.status_code == 302 and response["Location"] == run_url(run)
    run.refresh_from_db()
    assert (run.status, run.cancel_reason, run.cancel_actor) == (
        RunStatus.CANCELLED,
        "wrong list",
        "operator",
    )
    page_after = operator.get(run_url(run))
    assert "The run was cancelled." in messages_of(page_after)
    assert "Cancel run" not in page_after.content.decode()
    again = operator.post(run_url(run, "cancel"), follow=True)
    assert messages_of(again) == ["The run was already cancelled."]
    looked = operator.get(run_url(run, "cancel"), follow=True)
    assert messages_of(looked) == ["The run was already cancelled."]


def test_cancel_button_on_an_ended_run_explains(app: Inngest, admin_client: Client) -> None:
    run = send(app, "admin/quick")
    response = admin_client.post(run_url(run, "cancel"), follow=True)
    assert messages_of(response) == [
        "This run had already ended (Completed), so it was not cancelled."
    ]
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_cancel_url_of_a_missing_run_goes_back_to_the_list(admin_client: Client) -> None:
    url = reverse("admin:django_inngest_functionrun_cancel", args=("01NOSUCHRUN0000000000000000",))
    for method in (admin_client.get, admin_client.post):
        response = method(url, follow=True)
        assert response.redirect_chain[-1][0] == reverse(RUNS)
        assert messages_of(response) == ["No run has the ID 01NOSUCHRUN0000000000000000."]


def test_cancel_url_checks_csrf(app: Inngest, admin_user: Any) -> None:
    run = send(app, "admin/nap")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(run_url(run, "cancel")).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_viewer_without_cancel_permission_cannot_cancel(
    app: Inngest, django_user_model: Any
) -> None:
    viewer = client_for(staff(django_user_model, "viewer", "view_functionrun", "rerun_functionrun"))
    run = send(app, "admin/nap")
    changelist = viewer.get(reverse(RUNS))
    assert changelist.status_code == 200
    assert action_choices(changelist) == ["", "rerun_selected"]
    page = viewer.get(run_url(run))
    assert page.status_code == 200 and "Cancel run" not in page.content.decode()
    assert viewer.post(run_url(run, "cancel")).status_code == 403
    assert viewer.get(run_url(run, "cancel")).status_code == 403
    confirm_cancel(viewer, run)  # not offered, so not run either
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_viewer_without_any_action_permission_sees_no_actions(
    app: Inngest, django_user_model: Any
) -> None:
    viewer = client_for(staff(django_user_model, "reader", "view_functionrun"))
    send(app, "admin/nap")
    assert action_choices(viewer.get(reverse(RUNS))) == []


def test_user_without_view_permission_is_refused(app: Inngest, django_user_model: Any) -> None:
    nobody = client_for(staff(django_user_model, "nobody"))
    run = send(app, "admin/nap")
    assert nobody.get(reverse(RUNS)).status_code == 403
    assert nobody.post(run_url(run, "cancel")).status_code == 403


# -- rerun ----------------------------------------------------------------------------------


def test_rerun_action_starts_a_new_run_from_the_same_event(
    app: Inngest, admin_client: Client
) -> None:
    original = send(app, "admin/quick")
    response = action(admin_client, "rerun_selected", original)
    assert messages_of(response) == ["Started 1 new run."]
    rerun = FunctionRun.objects.get(original_run_id=original.run_id)
    assert rerun.event_id == original.event_id and rerun.status == RunStatus.COMPLETED


def test_rerun_of_a_function_removed_from_code_is_reported(
    app: Inngest, admin_client: Client
) -> None:
    run = send(app, "admin/quick")
    app.registry.unregister("admin-app-quick")
    response = action(admin_client, "rerun_selected", run)
    assert len(messages_of(response)) == 1
    assert messages_of(response)[0].startswith(f"Could not rerun {run.run_id}:")


def test_rerun_needs_its_permission(app: Inngest, django_user_model: Any) -> None:
    operator = client_for(staff(django_user_model, "op", "view_functionrun", "cancel_functionrun"))
    run = send(app, "admin/quick")
    assert action_choices(operator.get(reverse(RUNS))) == ["", "cancel_selected"]
    action(operator, "rerun_selected", run)
    assert not FunctionRun.objects.filter(original_run_id=run.run_id).exists()


# -- functions ------------------------------------------------------------------------------


def test_function_list_counts_runs_per_status_in_one_query(
    app: Inngest, admin_client: Client
) -> None:
    for _ in range(2):
        send(app, "admin/nap")
    send(app, "admin/quick")
    send(app, "admin/broken")
    confirm_cancel(admin_client, FunctionRun.objects.filter(function_id="admin-app-napper").first())
    url = reverse("admin:django_inngest_functionregistration_changelist")
    response = admin_client.get(url)
    counts = {
        f.function_id: (
            f.runs_running,
            f.runs_completed,
            f.runs_failed,
            f.runs_cancelled,
            f.runs_queued,
        )
        for f in response.context["cl"].result_list
    }
    assert counts["admin-app-napper"] == (1, 0, 0, 1, 0)
    assert counts["admin-app-quick"] == (0, 1, 0, 0, 0)
    assert counts["admin-app-broken"] == (0, 0, 1, 0, 0)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for index in range(5):
        FunctionRegistration.objects.create(
            function_id=f"extra-{index}", app_id="x", fn_id=str(index), name="x"
        )
    with CaptureQueriesContext(connection) as more:
        admin_client.get(url)
    assert len(more) == len(few)  # no query per row
    query = {"function__function_id__exact": "admin-app-napper", "status__exact": "Running"}
    status_link = f"?{urlencode(query)}"
    assert status_link.replace("&", "&amp;") in response.content.decode()


def test_function_page_shows_triggers_cancel_rules_and_counts(
    isolated_registry: Any, admin_client: Client
) -> None:
    from django_inngest import Cancel

    client = Inngest(app_id="shop")

    @client.create_function(
        fn_id="import",
        trigger=TriggerEvent(event="shop/import", expression="event.data.size > 0"),
        cancel=[Cancel(event="shop/import.cancelled", match="data.id", timeout=timedelta(hours=1))],
        retries=2,
    )
    def handler(ctx: Context) -> None:
        ctx.step.sleep("wait", timedelta(hours=1))

    client.send_sync(Event(name="shop/import", data={"size": 1, "id": 1}))
    function = FunctionRegistration.objects.get(function_id="shop-import")
    content = admin_client.get(
        reverse("admin:django_inngest_functionregistration_change", args=(function.pk,))
    ).content.decode()
    assert "event <code>shop/import</code> if <code>event.data.size &gt; 0</code>" in content
    assert (
        "event <code>shop/import.cancelled</code> if <code>event.data.id == async.data.id</code>"
        in content
    )
    assert "within 3600s" in content
    assert "Running</span> <a href=" in content  # the count links to the filtered run list
    assert f"{reverse(BULK)}?function=shop-import" in content


# -- bulk cancellation ----------------------------------------------------------------------


def bulk_data(function_id: str, *, if_exp: str = "", **extra: str) -> dict[str, str]:
    before = timezone.localtime() + timedelta(seconds=2)
    return {
        "function": function_id,
        "started_after": "",
        "started_before": before.strftime("%Y-%m-%dT%H:%M:%S"),
        "if_exp": if_exp,
        **extra,
    }


def bulk_cancel(client: Client, function_id: str) -> Any:
    """Preview, then confirm what was previewed."""
    data = bulk_data(function_id)
    key = preview(client, data).context["preview"]["key"]
    return client.post(
        reverse(BULK), {**data, "confirm": "Cancel", "preview_key": key}, follow=True
    )


def preview(client: Client, data: dict[str, str]) -> Any:
    return client.post(reverse(BULK), {**data, "preview": "Preview"})


def test_bulk_form_previews_then_cancels_matching_runs(app: Inngest, admin_client: Client) -> None:
    target = send(app, "admin/nap", importId="a")
    spared = send(app, "admin/nap", importId="b")
    other_function = send(app, "admin/quick")
    data = bulk_data("admin-app-napper", if_exp="event.data.importId == 'a'")

    response = preview(admin_client, data)
    assert response.status_code == 200
    assert response.context["preview"]["count"] == 1
    content = response.content.decode()
    assert "1 run matches" in content and target.run_id in content and spared.run_id not in content
    assert not Cancellation.objects.exists()  # a preview changes nothing

    confirm = {**data, "confirm": "Cancel 1 run", "preview_key": response.context["preview"]["key"]}
    done = admin_client.post(reverse(BULK), confirm, follow=True)
    cancellation = Cancellation.objects.get()
    assert done.redirect_chain[-1][0] == reverse(
        "admin:django_inngest_cancellation_change", args=(cancellation.pk,)
    )
    assert messages_of(done) == ["Bulk cancellation created: 1 run was cancelled."]
    assert (cancellation.source, cancellation.if_exp) == ("admin", "event.data.importId == 'a'")
    target.refresh_from_db()
    spared.refresh_from_db()
    other_function.refresh_from_db()
    assert target.status == RunStatus.CANCELLED and target.cancellation_id == cancellation.pk
    assert spared.status == RunStatus.RUNNING

    listing = admin_client.get(reverse("admin:django_inngest_cancellation_changelist"))
    row = listing.context["cl"].result_list[0]
    assert row.runs_count == 1
    runs_link = f"{reverse(RUNS)}?cancellation={cancellation.pk}"
    assert runs_link in listing.content.decode()
    filtered = admin_client.get(runs_link)
    assert [r.run_id for r in filtered.context["cl"].result_list] == [target.run_id]
    run_page = admin_client.get(run_url(target)).content.decode()
    assert reverse("admin:django_inngest_cancellation_change", args=(cancellation.pk,)) in run_page


def test_bulk_form_confirm_needs_the_previewed_criteria(app: Inngest, admin_client: Client) -> None:
    run = send(app, "admin/nap", importId="a")
    data = bulk_data("admin-app-napper", if_exp="event.data.importId == 'zzz'")
    key = preview(admin_client, data).context["preview"]["key"]
    changed = {**data, "if_exp": "", "confirm": "Cancel", "preview_key": key}
    response = admin_client.post(reverse(BULK), changed)
    assert response.status_code == 200 and response.context["preview"]["count"] == 1
    assert "The criteria changed" in messages_of(response)[0]
    assert not Cancellation.objects.exists()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_bulk_form_with_no_match_offers_no_confirm(app: Inngest, admin_client: Client) -> None:
    send(app, "admin/quick")
    response = preview(admin_client, bulk_data("admin-app-quick"))
    assert response.context["preview"]["count"] == 0
    assert 'name="confirm"' not in response.content.decode()


def test_bulk_form_rejects_a_bad_expression_and_window(app: Inngest, admin_client: Client) -> None:
    send(app, "admin/nap")
    bad_if = preview(admin_client, bulk_data("admin-app-napper", if_exp="event.data.x == "))
    assert bad_if.context["preview"] is None
    assert "if_exp" in bad_if.context["form"].errors
    wrong_variable = preview(
        admin_client, bulk_data("admin-app-napper", if_exp="async.data.x == 1")
    )
    assert "unknown variable 'async'" in wrong_variable.context["form"].errors["if_exp"][0]
    future = timezone.localtime() + timedelta(hours=1)
    data = bulk_data("admin-app-napper", started_before=future.strftime("%Y-%m-%dT%H:%M:%S"))
    assert "started_before" in preview(admin_client, data).context["form"].errors
    backwards = bulk_data(
        "admin-app-napper", started_after=timezone.localtime().strftime("%Y-%m-%dT%H:%M:%S")
    )
    backwards["started_before"] = (timezone.localtime() - timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    assert "started_after" in preview(admin_client, backwards).context["form"].errors


def test_bulk_form_preselects_the_function_and_needs_cancel_permission(
    app: Inngest, admin_client: Client, django_user_model: Any
) -> None:
    send(app, "admin/nap")
    page = admin_client.get(reverse(BULK), {"function": "admin-app-napper"})
    assert page.status_code == 200
    assert page.context["form"]["function"].value() == "admin-app-napper"
    assert '<option value="admin-app-napper" selected>' in page.content.decode()
    changelist = admin_client.get(reverse("admin:django_inngest_cancellation_changelist"))
    assert reverse(BULK) in changelist.content.decode()

    viewer = client_for(
        staff(django_user_model, "v", "view_cancellation", "view_functionregistration")
    )
    assert viewer.get(reverse(BULK)).status_code == 403
    assert viewer.post(reverse(BULK), bulk_data("admin-app-napper")).status_code == 403
    assert (
        reverse(BULK)
        not in viewer.get(reverse("admin:django_inngest_cancellation_changelist")).content.decode()
    )
    function = FunctionRegistration.objects.get(function_id="admin-app-napper")
    function_page = viewer.get(
        reverse("admin:django_inngest_functionregistration_change", args=(function.pk,))
    )
    assert function_page.status_code == 200 and reverse(BULK) not in function_page.content.decode()


def test_bulk_confirm_reports_a_service_error(
    app: Inngest, admin_client: Client, monkeypatch: Any
) -> None:
    from django_inngest.admin import cancellations
    from django_inngest.engine.cancellation import BulkCancellationError

    send(app, "admin/nap")

    def refuse(**kwargs: Any) -> Any:
        raise BulkCancellationError("started_before must be at most 5 seconds in the future")

    monkeypatch.setattr(cancellations, "create_bulk_cancellation", refuse)
    data = bulk_data("admin-app-napper")
    key = preview(admin_client, data).context["preview"]["key"]
    response = admin_client.post(reverse(BULK), {**data, "confirm": "x", "preview_key": key})
    assert response.status_code == 200
    assert "at most 5 seconds" in response.content.decode()


def test_steps_and_listeners_pages(app: Inngest, admin_client: Client) -> None:
    run = send(app, "admin/nap")
    steps = admin_client.get(reverse("admin:django_inngest_steprun_changelist"), {"q": run.run_id})
    assert {s.step_id for s in steps.context["cl"].result_list} == {"prepare", "nap"}
    assert StoredEvent.objects.filter(pk=run.event_id).exists()
