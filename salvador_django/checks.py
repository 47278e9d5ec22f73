"""System checks of the ``SALVADOR`` setting (ids ``salvador.E0xx`` / ``W0xx``)."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections

from salvador_django.conf import DEFAULTS, raw_settings, setting_problems
from salvador_django.exceptions import ConfigurationError


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The ``SALVADOR`` setting is a dict of known keys with valid values."""
    raw = raw_settings()
    messages: list[CheckMessage] = [
        Error(message, hint="See the settings reference in the salvador-django docs.", id=check_id)
        for check_id, message in setting_problems(raw)
    ]
    if messages:
        return messages
    values = {**DEFAULTS, **raw}
    messages.extend(check_queue(values["QUEUE"], values["DATABASE"]))
    if not django_settings.USE_TZ:
        messages.append(
            Warning(
                "salvador-django schedules tasks with the database's clock, which SQLite "
                "reads as UTC; with USE_TZ = False a run_after you pass and the times you "
                "read back are off by your UTC offset.",
                hint="Set USE_TZ = True.",
                id="salvador.W001",
            )
        )
    if values["DISPATCH"] == "celery" and importlib.util.find_spec("celery") is None:
        messages.append(
            Error(
                "SALVADOR['DISPATCH'] is 'celery' but Celery is not installed.",
                hint='pip install "salvador-django[celery]"',
                id="salvador.E030",
            )
        )
    if values["LEASE_SECONDS"] < 3:
        messages.append(
            Warning(
                "SALVADOR['LEASE_SECONDS'] under 3 seconds lets a busy worker lose its leases.",
                id="salvador.W002",
            )
        )
    return messages


def check_queue(name: str, database: str) -> list[CheckMessage]:
    """Problems of the queue ``name`` over the database alias ``database``."""
    from salvador_django.queues import queue_class

    messages: list[CheckMessage] = []
    if database not in connections:
        messages.append(
            Error(
                f"SALVADOR['DATABASE'] names the database alias {database!r}, "
                "which is not in DATABASES.",
                id="salvador.E010",
            )
        )
    try:
        cls = queue_class(name)
    except ConfigurationError as exc:
        hint = "Use 'database', 'redis' or a dotted path."
        return [*messages, Error(str(exc), hint=hint, id="salvador.E004")]
    return [*messages, *cls.check(database)]


@register(Tags.compatibility)
def check_workflows(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every registered workflow's steps form a graph: no unknown name, no cycle."""
    from salvador_django.registry import registry

    messages: list[CheckMessage] = []
    for name in registry.names():
        try:
            registry.get(name).graph  # noqa: B018 - checks it
        except ConfigurationError as exc:
            hint = "Fix the after= of its steps (see 'Graphs' in the docs)."
            messages.append(Error(str(exc), hint=hint, id="salvador.E040"))
    return messages
