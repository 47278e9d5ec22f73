"""Django's tasks API, from ``django.tasks`` (Django 6) or the ``django_tasks`` backport
(Django 5.2, ``pip install salvador-django[tasks]``): the one place that knows which."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

try:  # Django 6
    from django.tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    BACKPORT = False
except ImportError:  # Django 5.2: the backport
    try:
        from django_tasks import (  # type: ignore[no-redef]
            DEFAULT_TASK_QUEUE_NAME,
            TaskContext,
            TaskResult,
            TaskResultStatus,
            task_backends,
        )
        from django_tasks.base import Task  # type: ignore[no-redef]
        from django_tasks.backends.base import BaseTaskBackend  # type: ignore[no-redef]
        from django_tasks.base import TaskError  # type: ignore[no-redef]
        from django_tasks.exceptions import (  # type: ignore[no-redef]
            InvalidTaskBackendError as InvalidTaskBackend,
        )
        from django_tasks.exceptions import (  # type: ignore[no-redef]
            InvalidTaskError as InvalidTask,
        )
        from django_tasks.exceptions import (  # type: ignore[no-redef]
            TaskResultDoesNotExist,
        )
        from django_tasks.signals import (  # type: ignore[no-redef]
            task_enqueued,
            task_finished,
            task_started,
        )
        from django_tasks.utils import normalize_json  # type: ignore[no-redef]
    except ImportError as exc:
        raise ImproperlyConfigured(
            "salvador_django.tasks needs Django 6 (django.tasks) or, on Django 5.2, the "
            "django-tasks backport: pip install 'salvador-django[tasks]'"
        ) from exc
    BACKPORT = True


def module_path(value: Any) -> str:
    """``module.QualName`` of a class or function, as Django names task errors."""
    return f"{value.__module__}.{value.__qualname__}"


__all__ = [
    "BACKPORT",
    "DEFAULT_TASK_QUEUE_NAME",
    "BaseTaskBackend",
    "InvalidTask",
    "InvalidTaskBackend",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "module_path",
    "normalize_json",
    "task_enqueued",
    "task_finished",
    "task_backends",
    "task_started",
]
