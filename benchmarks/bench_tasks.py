"""The Django tasks of the django-tasks section (``benchmarks/tasks_section.py``).

The same no-op task twice: ``ours`` on the task backend ``default`` (``SalvadorBackend``)
and, when django-tasks-db is installed, ``theirs`` on ``database`` (its
``DatabaseBackend``). Each returns when it began: the section reads the task's start
from its result.
"""

from __future__ import annotations

import time

from django.conf import settings

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef]


@task
def ours() -> float:
    """Do nothing; return when the task began (``time.time()``)."""
    return time.time()


if "database" in getattr(settings, "TASKS", {}):

    @task(backend="database")
    def theirs() -> float:
        """Do nothing; return when the task began (``time.time()``)."""
        return time.time()
