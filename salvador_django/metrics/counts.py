"""What the gauges show, read from the database in two cheap queries.

Unfinished tasks are few (they are what workers have still to do): one GROUP BY over
them, through the partial index of unfinished statuses (``salvador_task_triage``),
counts them and finds each workflow's oldest due task, aged on the database's clock.
Failed tasks pile up until an operator requeues or prunes them, so they are counted
among the :data:`FAILED_COUNT_CAP` most recent failures only (through
``salvador_task_failures``): the count of each workflow is exact while fewer tasks
than that have failed in all, a lower bound beyond.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q
from django.db.models.functions import Now

from salvador_django.models import Task
from salvador_django.registry import registry
from salvador_django.status import UNFINISHED, TaskStatus

#: The most failed tasks one reading counts (the most recent ones).
FAILED_COUNT_CAP = 10_000


@dataclass
class Counts:
    """One reading of the tasks table, by workflow."""

    #: ``{(workflow, status): tasks}`` for the unfinished statuses, 0 where none.
    unfinished: dict[tuple[str, str], int] = field(default_factory=dict)
    #: ``{workflow: failed tasks}`` among the :data:`FAILED_COUNT_CAP` most recent.
    failed: dict[str, int] = field(default_factory=dict)
    #: ``{workflow: seconds}`` since the oldest due task became due (0 if none is due).
    oldest_due_age: dict[str, float] = field(default_factory=dict)


def read_counts(database: str) -> Counts:
    """Count the tasks of ``database`` (two queries). Every workflow registered here
    or found in the table appears, with 0 where it has no such task."""
    tasks = Task.objects.using(database)
    counts = Counts()
    due_for = ExpressionWrapper(Now() - F("run_after"), output_field=DurationField())
    unfinished = (
        # The index's own condition, word for word: SQLite uses a partial index only
        # for a query that says it (without it: a scan of every task, 1 s at 1,000,000).
        tasks.filter(~Q(status=TaskStatus.COMPLETED), status__in=UNFINISHED)
        .values("workflow", "status")
        .annotate(
            n=Count("pk"),
            due_for=Max(due_for, filter=Q(status=TaskStatus.PENDING, run_after__lte=Now())),
        )
        .order_by()
    )
    for row in unfinished:
        workflow = row["workflow"]
        counts.unfinished[(workflow, row["status"])] = row["n"]
        age = max(counts.oldest_due_age.get(workflow, 0.0), _seconds(row["due_for"]))
        counts.oldest_due_age[workflow] = age
    # Counted here, not by a GROUP BY over "id IN (the recent ones)": PostgreSQL plans
    # that as a hash join over the whole table (180 ms at 1,000,000 tasks, not 10 ms).
    recent = tasks.filter(status=TaskStatus.FAILED).order_by("-finished_at")
    counts.failed = dict(Counter(recent.values_list("workflow", flat=True)[:FAILED_COUNT_CAP]))
    workflows = {*registry.names(), *counts.failed, *counts.oldest_due_age}
    for workflow in workflows:
        counts.failed.setdefault(workflow, 0)
        counts.oldest_due_age.setdefault(workflow, 0.0)
        for status in UNFINISHED:
            counts.unfinished.setdefault((workflow, status.value), 0)
    return counts


def _seconds(value: timedelta | float | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return max(0.0, value.total_seconds())
    return max(0.0, float(value) / 1_000_000)  # a backend that returns microseconds
