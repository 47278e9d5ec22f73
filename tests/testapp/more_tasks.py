"""More Django tasks for the tests of a task's life, triage and durability
(``test_django_tasks_life``, ``test_django_tasks_worker``).

Gated by files, not by threading events: a worker in another process sees them too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from salvador_django.tasks import retrying
from salvador_django.tasks.compat import TaskContext
from tests.testapp.tasks import Boom

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef]


@task
def gate(started: str, release: str) -> str:
    """Writes ``started``, then runs until ``release`` exists (60 s at most)."""
    Path(started).touch()
    deadline = time.monotonic() + 60
    while not Path(release).exists():
        if time.monotonic() > deadline:
            raise Boom(f"{release} never appeared")
        time.sleep(0.02)
    return "released"


@retrying({"max_attempts": 1})
@task
def needs_file(path: str) -> str:
    """Fails (once: no retry) while ``path`` does not exist."""
    if not Path(path).exists():
        raise Boom(f"no {path}")
    return "found"


@task(takes_context=True, priority=7)
def introspect(context: TaskContext[Any, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """What its context's ``task_result`` says while it runs."""
    result = context.task_result
    return {
        "id": result.id,
        "status": str(result.status),
        "attempt": context.attempt,
        "args": result.args,
        "kwargs": result.kwargs,
        "backend": result.backend,
        "queue_name": result.task.queue_name,
        "priority": result.task.priority,
        "module_path": result.task.module_path,
        "started": result.started_at is not None,
        "finished": result.finished_at is not None,
    }
