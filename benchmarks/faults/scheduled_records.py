"""The scheduled workflow's records, read for ``benchmarks.faults.scheduled_checks``.

The run's workers tick the schedules from their start; ``pause_schedules`` pauses them
(the admin's switch) once the faults are over, so that the run can wait for the last
tasks. ``scheduled_records`` reads the rest once every task has finished.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from benchmarks.faults.checks import Execution, Fault, Records
from benchmarks.faults.rows import effects_of, failed_attempts
from benchmarks.faults.scheduled_checks import WORKFLOW, ScheduledRecords, Tick


def pause_schedules() -> float:
    """Pause every schedule of the workflow, trying again through outages; when (epoch).

    Synced first: in a run shorter than a worker's start, none may have written them yet.
    """
    from django.db import DatabaseError, connection

    from salvador_django.models import Schedule
    from salvador_django.scheduling import sync_schedules

    while True:
        try:
            sync_schedules()
            Schedule.objects.filter(workflow=WORKFLOW).update(paused=True)
            return time.time()
        except DatabaseError:
            connection.close()
            time.sleep(0.2)


def read_log(log: Path) -> list[Execution]:
    return [Execution(**json.loads(line)) for line in log.read_text().splitlines() if line.strip()]


def scheduled_records(log: Path, faults: list[Fault], ready: dict[int, float]) -> ScheduledRecords:
    """The records of the scheduled workflow, read once every task has finished;
    ``ready``: when each worker was first seen running a step (of any workflow)."""
    from salvador_django.models import Task

    ticks, statuses, errors, events = [], {}, {}, {}
    rows = Task.objects.filter(workflow=WORKFLOW).values_list(
        "id", "status", "error", "idempotency_key", "meta", "created_at", "finished_at"
    )
    for task_id, status, error, key, meta, created, finished in rows:
        task = str(task_id)
        due = datetime.fromisoformat(meta["scheduled_for"]).timestamp()
        ticks.append(Tick(task, meta.get("schedule", ""), due, key, created.timestamp()))
        statuses[task] = status
        if status != "completed":
            errors[task] = error
        events[task] = [created.timestamp()]
        if finished is not None:
            events[task].append(finished.timestamp())
    executions = read_log(log)
    records = Records(
        statuses,
        errors,
        events,
        executions,
        effects_of(statuses),
        failed_attempts(WORKFLOW),
        faults,
        steps=1,
    )
    return ScheduledRecords(ticks, records, dict(ready))
