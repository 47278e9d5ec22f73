from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SalvadorConfig(AppConfig):
    """Finds every installed app's ``workflows`` module and registers the checks."""

    name = "salvador_django"
    label = "salvador"
    verbose_name = _("Workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from salvador_django import checks, logs, queues  # noqa: F401 - register checks and hooks
        from salvador_django.metrics import enable_if_configured
        from salvador_django.registry import autodiscover

        logs.install()
        autodiscover()
        enable_if_configured()
