from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class DjangoInngestConfig(AppConfig):
    name = "django_inngest"
    label = "django_inngest"
    verbose_name = _("Inngest")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_inngest import checks as inngest_checks
        from django_inngest import signal_handlers
        from django_inngest.registry import autodiscover, registry
        from django_inngest.sdk_apps import checks as sdk_app_checks
        from django_inngest.sdk_apps.catalog import catalog

        checks.register(inngest_checks.check_settings, "django_inngest")
        checks.register(inngest_checks.check_integration, "django_inngest")
        checks.register(inngest_checks.check_functions, "django_inngest")
        checks.register(sdk_app_checks.check_sdk_settings, "django_inngest")
        signal_handlers.connect()
        post_migrate.connect(signal_handlers.sync_after_migrate, sender=self)
        # No database access here: registrations are synced on post_migrate, by
        # `manage.py inngest_sync`, and when a worker starts.
        autodiscover()
        # Functions that SDK apps serve over HTTP, synced into the database: looked up behind
        # the code functions (no query here; the first lookup loads them).
        registry.attach_source(catalog)
