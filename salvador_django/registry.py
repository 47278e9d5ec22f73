"""The registry of workflow definitions, by name, and the discovery of ``workflows`` modules.

The registry knows a definition only as something with a ``name`` and ``steps``, so
any layer may look a workflow up without importing the definitions module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING

from django.utils.module_loading import module_has_submodule

from salvador_django.exceptions import ConfigurationError, WorkflowNotFound

if TYPE_CHECKING:
    from django.apps import AppConfig

    from salvador_django.definitions import Workflow

APP_NAME = "salvador_django"


class Registry:
    """Every workflow of the process, by name."""

    def __init__(self) -> None:
        self._workflows: dict[str, Workflow] = {}
        self._lock = threading.Lock()
        #: Counts changes (workflows registered or not, schedules declared): what was
        #: copied from the registry knows whether it is current.
        self.version = 0

    def register(self, workflow: Workflow) -> None:
        with self._lock:
            if workflow.name in self._workflows:
                raise ConfigurationError(
                    f"A workflow named {workflow.name!r} is already registered."
                )
            for schedule in workflow.schedules:
                self._check_schedule_name(schedule.name, workflow.name)
            self._workflows[workflow.name] = workflow
            self.version += 1

    def changed(self) -> None:
        """A registered workflow changed (a schedule was declared)."""
        with self._lock:
            self.version += 1

    def check_schedule_name(self, name: str | None, workflow: str) -> None:
        """Raise ``ConfigurationError`` if a schedule named ``name`` is declared already."""
        with self._lock:
            self._check_schedule_name(name, workflow)

    def _check_schedule_name(self, name: str | None, workflow: str) -> None:
        for other in self._workflows.values():
            if name not in other.schedule_names:
                continue
            if other.name == workflow:
                raise ConfigurationError(f"Workflow {workflow!r} has two schedules named {name!r}.")
            raise ConfigurationError(
                f"Schedule {name!r} of workflow {workflow!r}: workflow {other.name!r} "
                "has a schedule of that name already (schedule names are unique)."
            )

    def unregister(self, name: str) -> None:
        with self._lock:
            self._workflows.pop(name, None)
            self.version += 1

    def get(self, name: str) -> Workflow:
        """The workflow named ``name``; raises :class:`WorkflowNotFound`."""
        try:
            return self._workflows[name]
        except KeyError:
            raise WorkflowNotFound(
                f"No workflow named {name!r} is registered ({self._why_not()})."
            ) from None

    def _why_not(self) -> str:
        """What a user should know when a name is unknown: what is registered, or why nothing."""
        if self._workflows:
            return f"registered: {', '.join(sorted(self._workflows))}"
        from django.apps import apps

        if not apps.is_installed(APP_NAME):
            return (
                f"registered: none; {APP_NAME!r} is not in INSTALLED_APPS, so no app's "
                "workflows.py was imported"
            )
        return "registered: none; no installed app has a workflows.py that defines one"

    def names(self) -> list[str]:
        return sorted(self._workflows)

    def __contains__(self, name: object) -> bool:
        return name in self._workflows


registry = Registry()


def autodiscover(app_configs: Iterable[AppConfig] | None = None) -> None:
    """Import the ``workflows`` module of each app (default: every installed app).

    ``SalvadorConfig.ready()`` calls it. An app without a ``workflows`` module is
    skipped. A module that raises while it is imported raises
    :class:`ConfigurationError` naming the module, with the original exception
    chained; the workflows it registered before it failed are unregistered, so that
    importing it again does not fail on their names instead.
    """
    if app_configs is None:
        from django.apps import apps

        app_configs = apps.get_app_configs()
    for app_config in app_configs:
        module = f"{app_config.name}.workflows"
        before = set(registry.names())
        try:
            import_module(module)
        except Exception as exc:
            for name in set(registry.names()) - before:
                registry.unregister(name)
            if not module_has_submodule(app_config.module, "workflows"):
                continue  # the app has no workflows module: nothing to discover
            raise ConfigurationError(
                f"Importing {module!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
