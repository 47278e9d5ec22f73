"""What a run's checks read from the database, the same for each workflow: the effects
its steps committed and its failed step attempts; and the three-step workflow's records."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from benchmarks.faults.checks import Effect, Execution, Fault, Records


def effects_of(task_ids: Collection[str]) -> list[Effect]:
    """The committed effects of the tasks ``task_ids``."""
    from benchmarks.faults.models import Effect as EffectRow

    rows = EffectRow._default_manager.values_list("task_id", "step", "token", "pid", "at")
    return [
        Effect(str(task), step, token, pid, at)
        for task, step, token, pid, at in rows
        if str(task) in task_ids
    ]


def failed_attempts(workflow: str | None = None) -> set[tuple[str, int, int]]:
    """(task, step index, attempt) of each failed step attempt (of ``workflow``'s tasks)."""
    from salvador_django.models import StepRun

    runs = StepRun.objects.filter(status="failed")
    if workflow is not None:
        runs = runs.filter(task__workflow=workflow)
    return {
        (str(task), index, attempt)
        for task, index, attempt in runs.values_list("task_id", "index", "attempt")
    }


def three_step_records(
    submitted: dict[str, float],
    log: Path,
    faults: list[Fault],
    dead_workers: list[str],
    dead_threads: list[str],
) -> Records:
    """The records of the three-step workflow (``chaos``), read once every task has
    finished; ``submitted``: when the run submitted each task (its id: epoch seconds)."""
    from salvador_django.models import Task

    statuses, errors, events = {}, {}, {}
    for task_id, status, error, finished in Task.objects.filter(workflow="chaos").values_list(
        "id", "status", "error", "finished_at"
    ):
        key = str(task_id)
        statuses[key] = status
        if status != "completed":
            errors[key] = error
        events[key] = [submitted[key]] if key in submitted else []
        if finished is not None:
            events[key].append(finished.timestamp())
    executions = [Execution(**json.loads(line)) for line in log.read_text().splitlines()
                  if line.strip()]  # fmt: skip
    effects = effects_of(statuses)  # the children's are the fan-out checks'
    return Records(statuses, errors, events, executions, effects, failed_attempts(), faults,
                   dead_workers, dead_threads)  # fmt: skip
