"""``SalvadorBackend``: Django's tasks API on salvador-django's workers and tables."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core import checks

import salvador_django.tasks.compat as compat
import salvador_django.tasks.told as told
from salvador_django import signals
from salvador_django.conf import get_settings
from salvador_django.exceptions import PayloadError, PermanentError
from salvador_django.models import Task
from salvador_django.registry import registry
from salvador_django.retry import Retry
from salvador_django.submission import submit
from salvador_django.tasks.loading import as_retry
from salvador_django.tasks.names import is_django_task, workflow_name
from salvador_django.tasks.queues import QueueWorkflow, ensure_queue
from salvador_django.tasks.results import result_of

if TYPE_CHECKING:
    _Task = compat.Task[Any, Any]
else:
    _Task = compat.Task  # Django 6's is not generic at run time


@dataclass(frozen=True, slots=True, kw_only=True)
class SalvadorTask(_Task):
    """A Django task with salvador-django's extras: ``retry`` (a :class:`Retry`, or a
    dict of its fields), given as ``@task(retry=...)`` where Django passes the task's
    keyword arguments on (Django 6.1, the backport), else by :func:`retrying`."""

    retry: Retry | dict[str, Any] | None = None


def retrying(
    policy: Retry | dict[str, Any],
) -> Callable[[compat.Task[Any, Any]], SalvadorTask]:
    """``@retrying(Retry(...))`` above ``@task``: the retry policy of that task, where
    ``@task`` takes no ``retry=`` (Django 6.0)."""

    def decorate(django_task: compat.Task[Any, Any]) -> SalvadorTask:
        own = {f.name: getattr(django_task, f.name) for f in fields(django_task)}
        return SalvadorTask(**{**own, "retry": policy})

    return decorate


class SalvadorBackend(compat.BaseTaskBackend):
    """``TASKS = {"default": {"BACKEND": "salvador_django.tasks.SalvadorBackend"}}``:
    each enqueued task is a task of the one-step workflow of its queue, stored in the
    caller's transaction and run by ``runworkflows`` (or Celery), with its retries,
    leases, admin, metrics and traces. ``OPTIONS = {"RETRY": {...}}``: the default
    retry policy of its tasks (a :class:`Retry` or a dict of its fields)."""

    task_class = SalvadorTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        try:
            self.retry = as_retry(
                self.options.get("RETRY"), f"TASKS[{alias!r}]['OPTIONS']['RETRY']"
            )
        except PermanentError as exc:
            raise compat.InvalidTaskBackend(str(exc)) from exc
        for queue_name in self.queues or {compat.DEFAULT_TASK_QUEUE_NAME}:
            ensure_queue(alias, queue_name, self.retry)
        told.connect(type(self))

    def validate_task(self, task: compat.Task[Any, Any]) -> None:
        super().validate_task(task)
        if isinstance(task, SalvadorTask):
            as_retry(task.retry, f"the retry of task {task.module_path!r}")

    def enqueue(
        self, task: compat.Task[Any, Any], args: Any, kwargs: Any
    ) -> compat.TaskResult[Any, Any]:
        self.validate_task(task)
        body = {
            "task": task.module_path,
            "args": compat.normalize_json(args),
            "kwargs": compat.normalize_json(kwargs),
            "backend": self.alias,
            "queue_name": task.queue_name,
            "deferred": task.run_after is not None,
        }
        _check_round_trip(body)
        queue = ensure_queue(self.alias, task.queue_name, self.retry)
        row = submit(
            queue, body, meta={"task": task.module_path}, run_after=task.run_after,
            priority=task.priority,
        )  # fmt: skip
        result = result_of(row, [])
        database = get_settings().DATABASE
        signals.send_on_commit(compat.task_enqueued, type(self), database, task_result=result)
        return result

    def get_result(self, result_id: str) -> compat.TaskResult[Any, Any]:
        try:
            key = uuid.UUID(str(result_id))
        except ValueError:
            raise compat.TaskResultDoesNotExist(result_id) from None
        database = get_settings().DATABASE
        row = Task.objects.using(database).filter(id=key).first()
        if row is None or not is_django_task(row.workflow):
            raise compat.TaskResultDoesNotExist(result_id)
        try:
            return result_of(row)
        except PermanentError:  # the row names no Django task (it never runs either)
            raise compat.TaskResultDoesNotExist(result_id) from None

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        if apps.is_installed("salvador_django"):
            return []
        return [
            checks.Error(
                f"TASKS[{self.alias!r}] uses salvador_django.tasks.SalvadorBackend, but "
                "salvador_django is not in INSTALLED_APPS.",
                hint="Add 'salvador_django' to INSTALLED_APPS and run migrate.",
                id="salvador.E050",
            )
        ]


def _check_round_trip(body: dict[str, Any]) -> None:
    """Arguments that JSON would change (a non-string key, a NaN) are refused; tuples
    became lists already (``normalize_json``), as Django's backends store them."""
    try:
        same = json.loads(json.dumps(body)) == body
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"The task's arguments are not JSON: {exc}") from exc
    if not same:
        raise PayloadError("The task's arguments do not survive a JSON round trip.")


def queue_workflows(queue_names: list[str]) -> list[str]:
    """The workflows of the task queues named ``queue_names``, in every backend of ours
    (``runworkflows --queue-name``); ``LookupError`` names one no backend has."""
    found = []
    for queue_name in queue_names:
        names = [
            workflow.name
            for workflow in map(registry.get, registry.names())
            if isinstance(workflow, QueueWorkflow) and workflow.queue_name == queue_name
        ]
        if not names:
            names = [_any_queue(queue_name)]
        found += names
    return found


def _any_queue(queue_name: str) -> str:
    """The workflow of ``queue_name`` in a backend that takes any queue (``QUEUES: []``)."""
    for alias, backend in _our_backends():
        if not backend.queues:
            return ensure_queue(alias, queue_name, backend.retry).name
    raise LookupError(queue_name)


def _our_backends() -> list[tuple[str, Any]]:
    from django.conf import settings

    aliases = list(getattr(settings, "TASKS", None) or {})
    backends = [(alias, compat.task_backends[alias]) for alias in aliases]
    return [(alias, b) for alias, b in backends if isinstance(b, SalvadorBackend)]


__all__ = ["SalvadorBackend", "SalvadorTask", "retrying", "workflow_name"]
