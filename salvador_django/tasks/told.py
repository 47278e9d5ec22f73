"""Django's ``task_started`` and ``task_finished`` signals, sent from ours: a Django
task's attempt starts (``step_started``), its task ends (``task_finished``, after the
commit that ends it).

Django always listens (its own logging receivers), so each relay builds a
``TaskResult``. On the worker's path it reads nothing: a first claim has no attempts
before it, and what the relay learnt when the attempt started (:mod:`.running`, kept
on the worker's task) makes the result of the attempt that completes the task.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

import salvador_django.tasks.compat as compat
from salvador_django import signals
from salvador_django.exceptions import PermanentError
from salvador_django.models import StepRun, Task
from salvador_django.status import StepRunStatus, TaskStatus
from salvador_django.tasks.names import is_django_task
from salvador_django.tasks.results import attempts_of, claimant, result_of
from salvador_django.tasks.running import Running, begin, running_of


def connect(backend_class: type) -> None:
    """Relay our signals to Django's, as sent by ``backend_class`` (once per process)."""

    def started(sender: Any, task: Task, **kwargs: Any) -> None:
        if not is_django_task(task.workflow):
            return
        first_claim = task.started_at is not None and task.started_at == task.updated_at
        begin(task, Running([] if first_claim else attempts_of(task), timezone.now()))
        send(compat.task_started, task)

    def finished(sender: Any, task: Task, status: str, **kwargs: Any) -> None:
        if not is_django_task(task.workflow):
            return
        attempt = running_of(task)
        if attempt is not None and status == TaskStatus.COMPLETED:  # by this worker, now
            task.finished_at, task.return_value = timezone.now(), attempt.value
            done = StepRun(
                worker=claimant(task.claimed_by), status=StepRunStatus.COMPLETED,
                started_at=attempt.started_at, traceback="", error="",
            )  # fmt: skip
            send(compat.task_finished, task, [*attempt.runs, done])
        else:
            send(compat.task_finished, Task.objects.using(task._state.db).get(id=task.id))

    def send(signal: Any, task: Task, runs: list[StepRun] | None = None) -> None:
        try:
            result = result_of(task, runs)
        except PermanentError:  # the row names no Django task: there is no result to tell
            return
        signals.send(signal, backend_class, task_result=result)

    signals.step_started.connect(started, weak=False, dispatch_uid=DISPATCH_UID)
    signals.task_finished.connect(finished, weak=False, dispatch_uid=DISPATCH_UID)


def disconnect() -> None:
    """Stop relaying (a test that configured the backend puts things back)."""
    signals.step_started.disconnect(dispatch_uid=DISPATCH_UID)
    signals.task_finished.disconnect(dispatch_uid=DISPATCH_UID)


DISPATCH_UID = "salvador-django-tasks"
