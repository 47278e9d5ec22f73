"""A Django ``TaskResult`` read from our tables: the task row and its step runs.

Statuses: pending, waiting and paused are READY (not running, will run: a retry's
backoff is pending), running is RUNNING, completed is SUCCESSFUL, failed and cancelled
are FAILED (a cancelled task's ``errors`` end with its cancellation).
"""

from __future__ import annotations

import re
from typing import Any

import salvador_django.tasks.compat as compat
from salvador_django.exceptions import Cancelled
from salvador_django.models import StepRun, Task
from salvador_django.status import FINISHED, StepRunStatus, TaskStatus
from salvador_django.tasks.loading import load_task
from salvador_django.tasks.running import running_of

STATUSES = {
    TaskStatus.PENDING: compat.TaskResultStatus.READY,
    TaskStatus.WAITING: compat.TaskResultStatus.READY,
    TaskStatus.PAUSED: compat.TaskResultStatus.READY,
    TaskStatus.RUNNING: compat.TaskResultStatus.RUNNING,
    TaskStatus.COMPLETED: compat.TaskResultStatus.SUCCESSFUL,
    TaskStatus.FAILED: compat.TaskResultStatus.FAILED,
    TaskStatus.CANCELLED: compat.TaskResultStatus.FAILED,
}

#: The worker id of an attempt lost with its worker (in ``worker_ids``).
LOST = "(lost)"
#: The last line of a traceback that names its exception: ``pkg.mod.Error: message``.
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def result_of(task: Task, runs: list[StepRun] | None = None) -> compat.TaskResult[Any, Any]:
    """The ``TaskResult`` of ``task`` (a row of a Django task queue); ``runs``: its
    attempts, read when not given."""
    attempt = running_of(task)
    if runs is None:
        runs = attempt.runs if attempt is not None else attempts_of(task)
    body = task.body
    django_task = load_task(body["task"]).using(
        priority=task.priority,
        queue_name=body.get("queue_name"),
        backend=body.get("backend"),
        run_after=task.run_after if body.get("deferred") else None,
    )
    # An attempt lost with its worker (its lease expired) wrote no step run: each counts
    # as LOST, before the recorded ones (the row counts them, not when they were).
    workers = [LOST] * task.recoveries + [run.worker for run in runs]
    last_attempted = runs[-1].started_at if runs else None
    if task.status == TaskStatus.RUNNING:
        workers.append(claimant(task.claimed_by))
        last_attempted = attempt.started_at if attempt is not None else task.updated_at
    result: compat.TaskResult[Any, Any] = compat.TaskResult(
        task=django_task,
        id=str(task.id),
        status=STATUSES[TaskStatus(task.status)],
        enqueued_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at if task.status in FINISHED else None,
        last_attempted_at=last_attempted,
        args=body.get("args", []),
        kwargs=body.get("kwargs", {}),
        backend=body.get("backend", "default"),
        errors=[error_of(run) for run in runs if run.status == StepRunStatus.FAILED],
        worker_ids=workers,
    )
    if task.status == TaskStatus.CANCELLED:
        result.errors.append(
            compat.TaskError(
                exception_class_path=compat.module_path(Cancelled), traceback=task.error
            )
        )
    if task.status == TaskStatus.COMPLETED:
        object.__setattr__(result, "_return_value", task.return_value)
    return result


def attempts_of(task: Task) -> list[StepRun]:
    """The task's ended attempts, oldest first."""
    return list(
        StepRun.objects.using(task._state.db or "default")
        .filter(task_id=task.id, compensation=False)
        .exclude(status=StepRunStatus.SKIPPED)
        .order_by("started_at", "attempt")
    )


def claimant(token: str | None) -> str:
    """The worker of a claim token, as its step runs name it: ``host:pid`` of a
    worker's ``host:pid:runner:random``, ``host:pid:celery`` of a Celery task's."""
    if not token:
        return ""
    worker, _random = token.rsplit(":", 1)
    head, _, runner = worker.rpartition(":")
    return head if runner.isdigit() and head.count(":") >= 1 else worker


def error_of(run: StepRun) -> compat.TaskError:
    """A failed attempt as Django's ``TaskError``: its exception's class path, read from
    the last exception line of its traceback (builtins named ``builtins.X``)."""
    return compat.TaskError(exception_class_path=exception_path(run), traceback=run.traceback)


def exception_path(run: StepRun) -> str:
    lines = run.traceback.splitlines()
    frames = [n for n, line in enumerate(lines) if line.startswith("  File ")]
    after = lines[frames[-1] + 1 :] if frames else lines
    for line in after:
        if not line.startswith(" "):
            found = _EXCEPTION.match(line)
            if found:
                name = found.group(1)
                return name if "." in name else f"builtins.{name}"
    name = run.error.split(":", 1)[0]
    return name if "." in name else f"builtins.{name}"
