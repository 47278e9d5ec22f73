"""Each Django task queue is a one-step workflow: ``django.tasks:<queue>`` (or
``django.tasks:<alias>:<queue>`` for a backend alias other than ``default``).

The step imports the task by the module path stored with it, and only runs it if the
object found there is a Django ``Task``: a row never names an arbitrary callable.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import salvador_django.tasks.compat as compat
from salvador_django.definitions import Step, Workflow
from salvador_django.exceptions import PermanentError
from salvador_django.registry import registry
from salvador_django.retry import Retry
from salvador_django.tasks.loading import load_task, retry_of
from salvador_django.tasks.names import STEP, workflow_name
from salvador_django.tasks.step import run_django_task

if TYPE_CHECKING:
    from salvador_django.models import Task


class QueueWorkflow(Workflow):
    """A Django task queue: one step that runs the task named in the body; its retry
    policy is the task's own (``@task(retry=...)``), else the backend's ``RETRY``."""

    def __init__(self, name: str, queue_name: str, *, retry: Retry | None) -> None:
        super().__init__(name, retry=retry)
        self.queue_name = queue_name
        self.step(STEP, run_django_task)

    def retry_for(self, step: Step, task: Task | None = None) -> Retry:
        if task is not None:
            try:
                own = retry_of(load_task(task.body["task"]))
            except PermanentError:  # no task there: the failure is that one, not retried
                own = None
            if own is not None:
                return own
        return super().retry_for(step, task)


def ensure_queue(alias: str, queue_name: str, retry: Retry | None) -> QueueWorkflow:
    """The workflow of a queue, registered in this process if it was not yet."""
    name = workflow_name(alias, queue_name)
    with _registering:  # two threads' first enqueue to a new queue register it once
        if name not in registry:
            return QueueWorkflow(name, queue_name, retry=retry)
    found = registry.get(name)
    if not isinstance(found, QueueWorkflow):
        raise PermanentError(f"Workflow {name!r} is registered and is not a task queue.")
    return found


_registering = threading.Lock()


def register_configured_queues(aliases: list[str]) -> None:
    """Create the backends ``aliases`` of ``TASKS``: their queues' workflows register,
    so that a worker runs them without having enqueued anything."""
    for alias in aliases:
        compat.task_backends[alias]
