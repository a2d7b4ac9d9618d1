"""Apps written with the official Inngest SDK whose functions this server runs over HTTP."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_inngest.ids import new_ulid


class SdkApp(models.Model):
    """An app that serves functions with an official SDK (``inngest.django.serve``) and synced
    them here with ``POST /fn/register``. Its functions are ``FunctionRegistration`` rows whose
    ``app`` is this row.

    ``generation`` is a fresh ULID at every sync that changed something: ULIDs grow with time,
    so ``MAX(generation)`` (with the row count) is the cheap stamp every process compares to
    know whether its cache of SDK functions is stale (``sdk_apps.catalog``).
    """

    app_id = models.CharField(
        _("app ID"), max_length=255, unique=True, help_text=_("The SDK client's `app_id`.")
    )
    url = models.URLField(_("serve URL"), max_length=2048, help_text=_("Where the SDK serves."))
    sdk = models.CharField(_("SDK"), max_length=64, blank=True, default="")
    framework = models.CharField(_("framework"), max_length=64, blank=True, default="")
    app_version = models.CharField(_("app version"), max_length=255, blank=True, default="")
    checksum = models.CharField(
        _("checksum"),
        max_length=64,
        help_text=_("SHA-256 of the synced URL, SDK and functions (JCS)."),
    )
    version = models.PositiveIntegerField(
        _("version"), default=1, help_text=_("Bumped by every sync that changed the config.")
    )
    generation = models.CharField(_("generation"), max_length=26, default=new_ulid)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    synced_at = models.DateTimeField(_("synced at"))

    class Meta:
        verbose_name = _("SDK app")
        verbose_name_plural = _("SDK apps")
        ordering = ("app_id",)

    def __str__(self) -> str:
        return self.app_id
