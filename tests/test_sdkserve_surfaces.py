"""Ways to sync an SDK app: ``manage.py inngest_sync_app`` and the admin's Sync app button,
action and URL form; each reports the app's answer (which the SDK sends as a 200 even when
the sync failed)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client

from django_inngest.models import SdkApp
from tests.sdkserve.app import BAD_FLOW_PATH, BAD_KEY_PATH, SERVE_PATH
from tests.sdkserve.fixtures import SdkServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_command_syncs_and_reports(sdk_unsynced: SdkServer) -> None:
    out = StringIO()
    call_command("inngest_sync_app", sdk_unsynced.url(SERVE_PATH), stdout=out)
    assert "(in-band): synced (18 functions), configuration changed" in out.getvalue()
    out = StringIO()
    call_command("inngest_sync_app", sdk_unsynced.url(SERVE_PATH), "--out-of-band", stdout=out)
    assert "(out-of-band): synced, nothing changed" in out.getvalue()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (BAD_KEY_PATH, "Invalid or missing signing key"),
        (BAD_FLOW_PATH, "Batching and cancellation are mutually exclusive"),
        ("/api/nothing-here", "HTTP 404"),
    ],
)
def test_the_command_fails_with_the_apps_answer(
    sdk_unsynced: SdkServer, path: str, message: str
) -> None:
    with pytest.raises(CommandError, match="Sync failed") as failed:
        call_command("inngest_sync_app", sdk_unsynced.url(path), "--out-of-band")
    assert message in str(failed.value)
    assert not SdkApp.objects.exists()


def test_the_admin_lists_apps_and_syncs_them(sdk_server: SdkServer, admin_client: Client) -> None:
    app = SdkApp.objects.get()
    listing = admin_client.get("/admin/django_inngest/sdkapp/").content.decode()
    assert "sdks" in listing and "Sync an app" in listing
    page = admin_client.get(f"/admin/django_inngest/sdkapp/{app.pk}/change/").content.decode()
    assert "Sync app" in page and "sdks-steps" in page
    response = admin_client.post(f"/admin/django_inngest/sdkapp/{app.pk}/sync/", follow=True)
    assert "nothing changed" in response.content.decode()
    response = admin_client.post(
        "/admin/django_inngest/sdkapp/",
        {"action": "sync_selected", "_selected_action": [app.pk]},
        follow=True,
    )
    assert "nothing changed" in response.content.decode()
    response = admin_client.post(
        "/admin/django_inngest/sdkapp/sync-url/",
        {"url": sdk_server.url(BAD_FLOW_PATH)},
        follow=True,
    )
    assert "sync failed" in response.content.decode()
    assert admin_client.get(f"/admin/django_inngest/sdkapp/{app.pk}/sync/").status_code == 405


def test_syncing_from_the_admin_needs_the_change_permission(sdk_server: SdkServer) -> None:
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_sdkapp"))
    http = Client()
    http.force_login(viewer)
    app = SdkApp.objects.get()
    assert (
        "Sync app"
        not in http.get(f"/admin/django_inngest/sdkapp/{app.pk}/change/").content.decode()
    )
    assert http.post(f"/admin/django_inngest/sdkapp/{app.pk}/sync/").status_code == 403
    assert http.post("/admin/django_inngest/sdkapp/sync-url/", {"url": "x"}).status_code == 403
