from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class SalvadorConfig(AppConfig):
    """Finds every installed app's ``workflows`` module and registers the checks."""

    name = "salvador_django"
    label = "salvador"
    verbose_name = _("Workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name: str, app_module: Any) -> None:
        super().__init__(app_name, app_module)
        # Before any model is imported: the first model loads the database backend,
        # whose own error does not say which package to install.
        from salvador_django import store_checks

        alias = store_checks.store_alias()
        if alias is not None:
            store_checks.require_driver(alias, settings.DATABASES[alias].get("ENGINE", ""))

    def ready(self) -> None:
        from salvador_django import checks, logs, queues, store_checks  # noqa: F401 - registers
        from salvador_django.metrics import enable_if_configured
        from salvador_django.registry import autodiscover

        logs.install()
        autodiscover()
        enable_if_configured()
        aliases = task_backends_configured()
        if aliases:  # their queues' workflows, for the workers
            from salvador_django.tasks.queues import register_configured_queues

            register_configured_queues(aliases)


def task_backends_configured() -> list[str]:
    """The aliases of ``TASKS`` that use salvador-django's backend."""
    found = getattr(settings, "TASKS", None) or {}
    return [
        alias
        for alias, params in found.items()
        if str(params.get("BACKEND", "")).startswith("salvador_django.tasks.")
    ]
