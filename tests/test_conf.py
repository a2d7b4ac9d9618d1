"""``django_inngest.conf.settings`` reads ``DJANGO_INNGEST_*`` lazily, on every access."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_inngest.conf import PREFIX, SETTINGS, settings


def test_defaults_when_unset() -> None:
    assert settings.MAX_EVENT_BYTES == 512 * 1024
    assert settings.MAX_EVENTS_PER_REQUEST == 5000
    assert settings.DEFAULT_RETRIES == 4
    assert settings.DEDUPE_WINDOW_SECONDS == 24 * 3600
    assert settings.AUTODISCOVER_MODULE == "inngest_functions"
    assert settings.Q_CLUSTER_NAME is None
    # Crash recovery's bounds (README "Guarantees") follow from these.
    assert settings.LEASE_SECONDS == 10.0
    assert settings.REDISPATCH_AFTER_SECONDS == 10.0
    assert settings.STOP_GRACE_SECONDS == 1.0
    assert settings.FUNCTION_NOT_FOUND_GRACE_SECONDS == 600.0


def test_project_settings_are_read() -> None:
    # tests/settings.py sets these.
    assert settings.EVENT_KEYS == ["test-event-key"]
    assert settings.SIGNING_KEY.startswith("signkey-test-")


def test_override_settings_takes_effect_immediately() -> None:
    assert settings.MAX_EVENT_BYTES == 512 * 1024
    with override_settings(DJANGO_INNGEST_MAX_EVENT_BYTES=10):
        assert settings.MAX_EVENT_BYTES == 10
        with override_settings(DJANGO_INNGEST_MAX_EVENT_BYTES=20):
            assert settings.MAX_EVENT_BYTES == 20
        assert settings.MAX_EVENT_BYTES == 10
    assert settings.MAX_EVENT_BYTES == 512 * 1024


def test_pytest_django_settings_fixture_takes_effect(settings: pytest.FixtureRequest) -> None:
    from django_inngest.conf import settings as inngest_settings

    assert inngest_settings.DEFAULT_RETRIES == 4
    settings.DJANGO_INNGEST_DEFAULT_RETRIES = 7  # type: ignore[attr-defined]
    assert inngest_settings.DEFAULT_RETRIES == 7


def test_conftest_overrides_are_visible() -> None:
    # tests/conftest.py shortens the retry backoff for every test through the settings fixture.
    assert settings.RETRY_BACKOFF_SECONDS == 0.01
    assert settings.RETRY_BACKOFF_MAX_SECONDS == 0.05


def test_unknown_setting_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NOT_A_SETTING"):
        settings.NOT_A_SETTING  # noqa: B018
    assert not hasattr(settings, "MAX_EVENT_BYTE")


def test_unknown_setting_is_not_read_from_django_settings() -> None:
    # Only the documented names are exposed, even if the project defines others.
    with override_settings(DJANGO_INNGEST_SOMETHING_ELSE=1), pytest.raises(AttributeError):
        settings.SOMETHING_ELSE  # noqa: B018


def test_every_default_has_an_allowed_type() -> None:
    for name, setting in SETTINGS.items():
        assert isinstance(setting.default, setting.types), name
        assert setting.doc, name
    assert PREFIX == "DJANGO_INNGEST_"
