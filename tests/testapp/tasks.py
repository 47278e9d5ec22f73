"""Django tasks run by salvador-django's backend in the tests (``test_django_tasks``)."""

from __future__ import annotations

import os
import time
from typing import Any

from django.db import transaction

from salvador_django import submit
from salvador_django.conf import get_settings
from salvador_django.tasks import retrying
from salvador_django.tasks.compat import TaskContext
from tests.testapp.models import Event

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef]


class Boom(Exception):
    """What the failing tasks raise."""


@task
def add(a: int, b: int) -> int:
    return a + b


def _event(label: str, step: str) -> None:
    Event.objects.using(get_settings().DATABASE).create(
        task_id=label, step=step, attempt=1, pid=os.getpid(), started=time.time()
    )


@task(priority=10)
def urgent(label: str) -> str:
    _event(label, "urgent")
    return label


@task
def record(label: str) -> None:
    _event(label, "record")


@retrying({"max_attempts": 1})
@task
def explode(message: str) -> None:
    raise Boom(message)


@task(takes_context=True)
def flaky(context: TaskContext[Any, Any], fail_until: int) -> dict[str, Any]:
    """Fails its first ``fail_until - 1`` attempts; returns what its context said."""
    if context.attempt < fail_until:
        raise Boom(f"attempt {context.attempt}")
    return {"attempt": context.attempt, "id": context.task_result.id}


@task
async def add_later(a: int, b: int) -> int:
    return a + b


@task
def start_workflow(label: str) -> str:
    """A Django task that submits a workflow, in its own transaction."""
    with transaction.atomic(using=get_settings().DATABASE):
        return str(submit("three-steps", {"label": label}).id)


@task
def not_json() -> object:
    return object()


def plain_function() -> None:
    """Not a task: a row naming it is never run."""
