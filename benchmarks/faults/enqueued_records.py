"""The Django tasks' load and records, for ``benchmarks.faults.enqueued_checks``.

``EnqueueLoad`` enqueues the tasks at a steady pace with Django's ``.enqueue()``
(every third with ``.using(priority=...)``, every fifth flaky), trying again through
outages; ``enqueued_records`` reads each task's result through the backend
(``get_result``), its step runs and the log, once every task has finished.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.faults.checks import Execution, Fault, Records
from benchmarks.faults.enqueued_checks import (
    WORKFLOW,
    Attempt,
    Enqueued,
    EnqueuedRecords,
    Result,
)
from benchmarks.faults.paced_load import PacedLoad
from benchmarks.faults.rows import failed_attempts

FLAKY_EVERY, PRIORITY_EVERY = 5, 3


class EnqueueLoad(PacedLoad):
    """Enqueues ``count`` Django tasks over ``duration`` seconds."""

    label, offset = "django-tasks", 0.6

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enqueued: list[Enqueued] = []
        #: Numbers whose enqueue raised and was tried again: its first may have committed.
        self.retried: set[int] = set()

    def _submit_all(self) -> None:
        from django.db import DatabaseError, connection

        from benchmarks.faults.enqueued import chaos_square

        began = time.monotonic()
        pace = self.duration / max(self.count, 1)
        for number in range(self.count):
            time.sleep(max(0.0, began + (number + self.offset) * pace - time.monotonic()))
            work = round(self.rng.uniform(*self.work), 4)
            flaky = number % FLAKY_EVERY == 1
            priority = self.rng.randint(-100, 100) if number % PRIORITY_EVERY == 0 else 0
            django_task = chaos_square.using(priority=priority) if priority else chaos_square
            while True:
                try:
                    result = django_task.enqueue(number, work, flaky)
                    break
                except DatabaseError:
                    self.retried.add(number)
                    connection.close()
                    time.sleep(0.2)
            self.enqueued.append(Enqueued(number, str(result.id), flaky, priority))
            self.submitted[number] = str(result.id)


def read_log(log: Path) -> list[Execution]:
    return [Execution(**json.loads(line)) for line in log.read_text().splitlines() if line.strip()]


def result_of(result: Any) -> Result:
    """Our record of a ``TaskResult``."""
    return Result(
        id=str(result.id),
        number=result.args[0] if result.args else -1,
        status=result.status.name,
        return_value=result.return_value if result.status.name == "SUCCESSFUL" else None,
        priority=result.task.priority,
        attempts=result.attempts,
        worker_ids=tuple(result.worker_ids),
        errors=tuple(error.exception_class_path for error in result.errors),
    )


def enqueued_records(load: EnqueueLoad, log: Path, faults: list[Fault]) -> EnqueuedRecords:
    """The records, once every task has finished."""
    from salvador_django.models import StepRun, Task
    from salvador_django.tasks.compat import TaskResultDoesNotExist, task_backends

    backend = task_backends["default"]
    results, missing = [], []
    rows = Task.objects.filter(workflow=WORKFLOW).values_list("id", "status", "error", "recoveries")
    statuses, errors, lost = {}, {}, {}
    for task_id, status, error, recoveries in rows:
        statuses[str(task_id)] = status
        lost[str(task_id)] = recoveries
        if status != "completed":
            errors[str(task_id)] = error
    for key in sorted({*statuses, *(e.id for e in load.enqueued)}):
        try:
            results.append(result_of(backend.get_result(key)))
        except TaskResultDoesNotExist as exc:
            missing.append(f"{key}: {exc!r}")
    attempts = [
        Attempt(str(task), attempt, status, worker)
        for task, attempt, status, worker in StepRun.objects.filter(
            task__workflow=WORKFLOW, compensation=False
        )
        .exclude(status="skipped")
        .order_by("started_at", "attempt")
        .values_list("task_id", "attempt", "status", "worker")
    ]
    executions = Records(statuses, errors, {}, read_log(log), [], failed_attempts(WORKFLOW),
                         faults, steps=1)  # fmt: skip
    return EnqueuedRecords(list(load.enqueued), results, missing, attempts, executions,
                           set(load.retried), lost)  # fmt: skip
