"""Syncing an app written with inngest-py 0.5.19 into our database, over real HTTP: our PUT,
its ``POST /fn/register`` (or its in-band answer), what we store, and what we refuse."""

from __future__ import annotations

from typing import Any

import pytest

from django_inngest.models import FunctionRegistration, SdkApp
from tests.sdkserve.fixtures import SdkServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_out_of_band_sync_stores_the_app_and_its_functions(sdk_unsynced: SdkServer) -> None:
    outcome = sdk_unsynced.sync(in_band=False)
    assert outcome.ok, outcome.message
    assert (outcome.in_band, outcome.modified) == (False, True)
    app = SdkApp.objects.get()
    assert app.app_id == "sdks"
    assert app.url == sdk_unsynced.url("/api/inngest")
    assert (app.sdk, app.framework, app.version) == ("py:v0.5.19", "django", 1)
    steps = FunctionRegistration.objects.get(function_id="sdks-steps")
    assert (steps.sdk_app, steps.fn_id, steps.is_active) == (app, "steps", True)
    assert steps.config["steps"]["step"]["runtime"]["url"].endswith("fnId=sdks-steps&stepId=step")
    failure = FunctionRegistration.objects.get(function_id="sdks-doomed-failure")
    assert failure.config["triggers"][0]["event"] == "inngest/function.failed"
    again = sdk_unsynced.sync(in_band=False)
    assert (again.ok, again.modified) == (True, False)
    assert SdkApp.objects.get().version == 1
