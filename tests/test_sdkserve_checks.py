"""System checks for serving SDK apps: one test per ID."""

from __future__ import annotations

import types
from typing import Any

import pytest
from django.core.checks import run_checks
from django.urls import include, path


def ids() -> list[str]:
    return [m.id for m in run_checks(tags=["django_inngest"])]


def only(check_id: str) -> Any:
    found = [m for m in run_checks(tags=["django_inngest"]) if m.id == check_id]
    assert len(found) == 1, ids()
    return found[0]


def test_sdk_mode_must_be_cloud_or_dev(settings: Any) -> None:
    settings.DJANGO_INNGEST_SDK_MODE = "production"
    assert "'cloud' or 'dev'" in only("django_inngest.E040").msg


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SDK_ALLOWED_HOSTS", ["*.*.example.com"], "must be a host"),
        ("SDK_ALLOWED_HOSTS", ["app.example.com:99999"], "invalid port"),
        ("SDK_ALLOWED_NETWORKS", ["10.0.0.0/33"], "is not a CIDR"),
    ],
)
def test_allowed_hosts_and_networks_must_parse(
    settings: Any, name: str, value: list[str], fragment: str
) -> None:
    setattr(settings, f"DJANGO_INNGEST_{name}", value)
    assert fragment in only("django_inngest.E041").msg


@pytest.mark.parametrize("key", ["not-a-signkey", "signkey-prod-xyz", "signkey-prod-abc"])
def test_a_signing_key_sdk_apps_cannot_use_is_flagged(settings: Any, key: str) -> None:
    settings.DJANGO_INNGEST_SIGNING_KEY = key
    message = only("django_inngest.W040")
    assert "DJANGO_INNGEST_SIGNING_KEY" in message.msg
    assert key not in message.msg  # a secret, never repeated


def serving_urlconf() -> types.ModuleType:
    import inngest
    import inngest.django

    client = inngest.Inngest(app_id="checked", is_production=False)

    @client.create_function(fn_id="f", trigger=inngest.TriggerEvent(event="x/y"))
    def f(ctx: inngest.ContextSync) -> None:
        return None

    module = types.ModuleType("tests_checks_serving_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("", include("django_inngest.urls")),
        path("sub/", include([inngest.django.serve(client, [f])])),
    ]
    return module


def test_serving_an_sdk_app_here_warns_of_the_self_call_deadlock(settings: Any) -> None:
    assert "django_inngest.W041" not in ids()
    settings.ROOT_URLCONF = serving_urlconf()
    assert "more than one worker or thread" in only("django_inngest.W041").hint


def test_the_inline_limit_must_fit_djangos_body_limit(settings: Any) -> None:
    settings.ROOT_URLCONF = serving_urlconf()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE (1048576)" in only("django_inngest.W042").msg
    settings.DJANGO_INNGEST_SDK_INLINE_STATE_MAX_BYTES = 1024 * 1024
    assert "django_inngest.W042" not in ids()


def test_django_q_must_not_kill_a_task_before_a_call_times_out(settings: Any) -> None:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60}
    assert "django_inngest.W043" not in ids()  # no SDK app is configured: nothing to say
    settings.DJANGO_INNGEST_SDK_ALLOWED_HOSTS = ["app.example.com"]
    assert "Q_CLUSTER['timeout'] (60 s)" in only("django_inngest.W043").msg
    settings.DJANGO_INNGEST_SDK_HTTP_TIMEOUT_SECONDS = 50
    assert "django_inngest.W043" not in ids()
