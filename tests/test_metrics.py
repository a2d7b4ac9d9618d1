"""The Prometheus endpoint: computed from the database at scrape time, and protected."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_inngest.models import Event, FunctionRegistration, FunctionRun, StepRun

pytestmark = pytest.mark.django_db(transaction=True)

BEARER = "Bearer signkey-test-0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_checkpoint() -> None:
    cache.clear()  # the hourly checkpoint of ended runs lives in the cache


@pytest.fixture
def runs() -> None:
    fn = FunctionRegistration.objects.create(
        function_id="m-app-fn", app_id="m-app", fn_id="fn", name="Fn"
    )
    event = Event.objects.create(name="m/e", ts=0, received_at=timezone.now())
    now = timezone.now()

    def run(status: str, seconds: float | None = None, **fields: Any) -> FunctionRun:
        created = now - timedelta(minutes=5)
        ended = created + timedelta(seconds=seconds) if seconds is not None else None
        return FunctionRun.objects.create(
            function=fn, event=event, status=status, created_at=created, ended_at=ended, **fields
        )

    done = run("Completed", 0.3)
    run("Completed", 45)
    run("Failed", 2)
    run("Cancelled", 1, cancel_source="event")
    run("Cancelled", 1, cancel_source="admin")
    run("Cancelled", 1, cancel_source="admin")
    run("Queued")
    run("Running", wait_kind="sleep")
    run("Running", wait_kind="event")
    run("Running")
    StepRun.objects.create(
        run=done,
        step_id="s",
        position=0,
        kind="run",
        status="Completed",
        started_at=now,
        ended_at=now + timedelta(milliseconds=20),
    )


def scrape(client: Client, **headers: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_come_from_the_database(runs: None, client: Client) -> None:
    metrics = scrape(client, HTTP_AUTHORIZATION=BEARER)
    fn = ("function_id", "m-app-fn")
    totals = metrics["inngest_runs_total"]
    assert totals[(fn, ("status", "Completed"))] == 2
    assert totals[(fn, ("status", "Failed"))] == 1
    assert totals[(fn, ("status", "Cancelled"))] == 3
    buckets = metrics["inngest_run_duration_seconds_bucket"]
    assert buckets[(fn, ("le", "0.5"))] == 1  # the 0.3 s run
    assert buckets[(fn, ("le", "5.0"))] == 2  # and the 2 s failure
    assert buckets[(fn, ("le", "+Inf"))] == 3  # cancelled runs are not timed
    assert metrics["inngest_run_duration_seconds_count"][(fn,)] == 3
    assert metrics["inngest_run_duration_seconds_sum"][(fn,)] == pytest.approx(47.3, abs=0.01)
    steps = metrics["inngest_step_duration_seconds_bucket"]
    assert steps[(("kind", "run"), ("le", "0.025"))] == 1
    active = metrics["inngest_runs_active"]
    assert {labels[1][1]: value for labels, value in active.items()} == {
        "queued": 1,
        "running": 1,
        "sleeping": 1,
        "waiting": 1,
    }
    cancels = metrics["inngest_cancellations_total"]
    assert cancels == {(("source", "admin"),): 2, (("source", "event"),): 1}


def test_a_scrape_sees_what_another_process_wrote(runs: None, client: Client) -> None:
    before = scrape(client, HTTP_AUTHORIZATION=BEARER)["inngest_runs_total"]
    FunctionRun.objects.filter(status="Queued").update(
        status="Completed", ended_at=timezone.now()
    )  # as a worker would, elsewhere
    after = scrape(client, HTTP_AUTHORIZATION=BEARER)["inngest_runs_total"]
    key = (("function_id", "m-app-fn"), ("status", "Completed"))
    assert after[key] == before[key] + 1


def test_runs_that_ended_before_the_hour_are_read_once_then_kept(
    runs: None, client: Client
) -> None:
    fn = FunctionRegistration.objects.get(function_id="m-app-fn")
    event = Event.objects.get(name="m/e")
    old = FunctionRun.objects.create(
        function=fn,
        event=event,
        status="Failed",
        created_at=timezone.now() - timedelta(hours=3),
        ended_at=timezone.now() - timedelta(hours=3),
    )
    key = (("function_id", "m-app-fn"), ("status", "Failed"))
    assert scrape(client, HTTP_AUTHORIZATION=BEARER)["inngest_runs_total"][key] == 2
    # Deleting old runs (a retention job) does not lower the counter: its checkpoint holds it.
    old.delete()
    assert scrape(client, HTTP_AUTHORIZATION=BEARER)["inngest_runs_total"][key] == 2
    # Runs ending now are read live.
    FunctionRun.objects.filter(status="Queued").update(status="Failed", ended_at=timezone.now())
    assert scrape(client, HTTP_AUTHORIZATION=BEARER)["inngest_runs_total"][key] == 3


def test_metrics_need_the_signing_key_or_the_permission(
    runs: None, client: Client, django_user_model: Any
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 401 and "Bearer" in response["WWW-Authenticate"]
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    user = django_user_model.objects.create_user("ops", password="pw")
    client.force_login(user)
    assert client.get("/metrics").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_functionrun"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    assert "inngest_runs_total" in scrape(client)
    assert client.post("/metrics").status_code == 405


def test_metrics_without_prometheus_client_say_what_to_install(
    runs: None, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_prometheus(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("prometheus_client"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_prometheus)
    response = client.get("/metrics", HTTP_AUTHORIZATION=BEARER)
    assert response.status_code == 501 and b"django-inngest[metrics]" in response.content
