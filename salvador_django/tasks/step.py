"""The one step of every Django task queue's workflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import salvador_django.tasks.compat as compat
from salvador_django.exceptions import NotSerialisable
from salvador_django.tasks.loading import load_task
from salvador_django.tasks.results import result_of
from salvador_django.tasks.running import running_of

if TYPE_CHECKING:
    from salvador_django.models import Task


def run_django_task(task: Task) -> Any:
    """The step: run the Django task named in the body with its arguments."""
    body = task.body
    django_task = load_task(body["task"])
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    if django_task.takes_context:
        context: compat.TaskContext[Any, Any] = compat.TaskContext(task_result=result_of(task))
        value = django_task.call(context, *args, **kwargs)
    else:
        value = django_task.call(*args, **kwargs)
    try:
        value = compat.normalize_json(value)
    except (TypeError, ValueError) as exc:  # the same value again at every attempt
        raise NotSerialisable(f"The task returned a value that is not JSON: {exc}") from exc
    attempt = running_of(task)  # for task_finished's result
    if attempt is not None:
        attempt.value = value
    return value
