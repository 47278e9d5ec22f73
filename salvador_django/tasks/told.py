"""Django's ``task_started`` and ``task_finished`` signals, sent from ours: a Django
task's attempt starts (``step_started``), its task ends (``task_finished``, after the
commit that ends it)."""

from __future__ import annotations

from typing import Any

import salvador_django.tasks.compat as compat
from salvador_django import signals
from salvador_django.exceptions import PermanentError
from salvador_django.models import Task
from salvador_django.tasks.names import is_django_task
from salvador_django.tasks.results import result_of


def connect(backend_class: type) -> None:
    """Relay our signals to Django's, as sent by ``backend_class`` (once per process)."""

    def started(sender: Any, task: Task, **kwargs: Any) -> None:
        if is_django_task(task.workflow):
            send(compat.task_started, task)

    def finished(sender: Any, task: Task, **kwargs: Any) -> None:
        if is_django_task(task.workflow):
            send(compat.task_finished, Task.objects.using(task._state.db).get(id=task.id))

    def send(signal: Any, task: Task) -> None:
        try:
            result = result_of(task)
        except PermanentError:  # the row names no Django task: there is no result to tell
            return
        signals.send(signal, backend_class, task_result=result)

    signals.step_started.connect(started, weak=False, dispatch_uid="salvador-django-tasks")
    signals.task_finished.connect(finished, weak=False, dispatch_uid="salvador-django-tasks")
