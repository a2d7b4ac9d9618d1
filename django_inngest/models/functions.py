"""Functions the database knows, synced from code."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class FunctionRegistration(models.Model):
    """A function known to the database, synced from code. Removed code makes it inactive."""

    function_id = models.CharField(
        _("function ID"), max_length=255, unique=True, help_text=_("Inngest's `app_id-fn_id`.")
    )
    app_id = models.CharField(_("app ID"), max_length=255)
    fn_id = models.CharField(_("local function ID"), max_length=255)
    name = models.CharField(_("name"), max_length=255)
    is_active = models.BooleanField(_("active"), default=True)
    config = models.JSONField(_("configuration"), default=dict)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("function")
        verbose_name_plural = _("functions")
        ordering = ("function_id",)
        indexes = (models.Index(fields=("app_id", "fn_id"), name="inngest_fn_app_local"),)

    def __str__(self) -> str:
        return self.function_id
