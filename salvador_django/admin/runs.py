"""A task's step attempts in the order they happened, and the run each belongs to.

The engine numbers a step's attempts from 1 again after a requeue (its attempt count
is the step's retry budget), so a requeued task can show "attempt 1" of one step
twice. A *run* is a stretch of attempts numbered on from each other: a new run begins
where a step's attempt number does not exceed that step's previous one, which only a
requeue (or a restart) does.
"""

from __future__ import annotations

from collections.abc import Iterable

from salvador_django.models import StepRun


def in_order(runs: Iterable[StepRun]) -> list[StepRun]:
    """``runs`` by start time; the id (the order they were written) breaks ties."""
    return sorted(runs, key=lambda run: (run.started_at, run.pk or 0))


def number_runs(runs: Iterable[StepRun]) -> list[tuple[int, StepRun]]:
    """Each of ``runs``, in the order they happened, with its run number (from 1)."""
    numbered = []
    number = 1
    latest: dict[tuple[bool, int, str], int] = {}  # this run's last attempt of each step
    for run in in_order(runs):
        step = (run.compensation, run.index, run.name)
        if step in latest and run.attempt <= latest[step]:
            number += 1
            latest = {}
        latest[step] = run.attempt
        numbered.append((number, run))
    return numbered
