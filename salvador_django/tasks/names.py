"""The names of the Django task queues' workflows (importable without Django's tasks
API: the admin tells a Django task's row by them)."""

from __future__ import annotations

#: The prefix of every Django task queue's workflow name.
PREFIX = "django.tasks:"
#: The name of the one step.
STEP = "run"


def workflow_name(alias: str, queue_name: str) -> str:
    """The workflow of ``queue_name`` of the task backend ``alias``."""
    return f"{PREFIX}{queue_name}" if alias == "default" else f"{PREFIX}{alias}:{queue_name}"


def is_django_task(workflow: str) -> bool:
    return workflow.startswith(PREFIX)
