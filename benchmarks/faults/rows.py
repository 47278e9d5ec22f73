"""What a run's checks read from the database, the same for each workflow: the effects
its steps committed and its failed step attempts."""

from __future__ import annotations

from collections.abc import Collection

from benchmarks.faults.checks import Effect


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
