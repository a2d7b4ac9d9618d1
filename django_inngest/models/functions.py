"""Functions the database knows: synced from code, or from an SDK app (``POST /fn/register``)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_inngest.models.sdk_apps import SdkApp


class FunctionRegistration(models.Model):
    """A function known to the database. Synced from code (``sdk_app`` is empty) or from an SDK
    app (``sdk_app`` set; ``config`` is the function's config exactly as the SDK sent it). A
    function gone from its code, or from its app's latest sync, becomes inactive; its runs stay.
    """

    function_id = models.CharField(
        _("function ID"), max_length=255, unique=True, help_text=_("Inngest's `app_id-fn_id`.")
    )
    app_id = models.CharField(_("app ID"), max_length=255)
    fn_id = models.CharField(_("local function ID"), max_length=255)
    name = models.CharField(_("name"), max_length=255)
    is_active = models.BooleanField(_("active"), default=True)
    config = models.JSONField(_("configuration"), default=dict)
    sdk_app = models.ForeignKey(
        SdkApp,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="functions",
        verbose_name=_("served by SDK app"),
        help_text=_("Empty for functions defined in this project's code."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("function")
        verbose_name_plural = _("functions")
        ordering = ("function_id",)
        indexes = (models.Index(fields=("app_id", "fn_id"), name="inngest_fn_app_local"),)

    def __str__(self) -> str:
        return self.function_id
