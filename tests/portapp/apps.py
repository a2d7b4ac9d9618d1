from __future__ import annotations

from django.apps import AppConfig


class PortAppConfig(AppConfig):
    name = "tests.portapp"
    label = "portapp"
    default_auto_field = "django.db.models.BigAutoField"
