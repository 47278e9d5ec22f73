"""The hourly roll-up: per workflow and hour, the tasks that completed and failed and
the step attempts' durations, written to :class:`~salvador_django.models.HourlyStats`
so that the admin's charts never read a large task table.

:func:`roll_up` is called from the workers' sweep (any number of workers may call it:
it is idempotent); :func:`aggregate` also counts the hour still open, live.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import Count, F, FloatField, Func, Q, QuerySet
from django.db.models.functions import Floor, Greatest, Least, Ln, Trunc
from django.utils import timezone

from salvador_django import dialect, histogram
from salvador_django.models import HourlyStats, StepRun, Task
from salvador_django.models.stats import ALL_WORKFLOWS
from salvador_django.status import StepRunStatus, TaskStatus

logger = logging.getLogger("salvador_django")

HOUR = timedelta(hours=1)
#: How far back the first roll-up (or one after a long stop) goes.
HORIZON = timedelta(days=7)
#: The closed hours rolled up again at every call: rows committed after their hour
#: closed (a step attempt's row is written when it ends, a long one's late) still count.
RECHECK_HOURS = 2
#: Rows older than this are deleted by the roll-up.
RETENTION = timedelta(days=35)
#: How often the roll-up runs (seconds): a call within this time of the last one (by
#: any process) does nothing, so every worker may call it at every sweep.
INTERVAL = 300.0


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour ``moment`` is in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class Seconds(Func):
    """``end - start``, two datetimes, in seconds."""

    output_field = FloatField()
    arg_joiner = " - "
    template = "CAST(EXTRACT(EPOCH FROM (%(expressions)s)) AS double precision)"

    def as_mysql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        end, start = (compiler.compile(expression) for expression in self.get_source_expressions())
        return (
            f"(TIMESTAMPDIFF(MICROSECOND, {start[0]}, {end[0]}) / 1000000.0)",
            [*start[1], *end[1]],
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


def bucket_of(seconds: Any) -> Func:
    """:func:`salvador_django.histogram.bucket` of a duration in seconds, in SQL."""
    smallest = histogram.SMALLEST
    scale = histogram.PER_DOUBLING / math.log(2)
    index = Floor(Ln(Greatest(seconds, smallest, output_field=FloatField()) / smallest) * scale)
    return Least(
        Greatest(index, 0, output_field=FloatField()),
        histogram.BUCKETS - 1,
        output_field=FloatField(),
    )


@dataclass
class Counts:
    """What ended in one hour (or part of one) in one workflow."""

    completed: int = 0
    failed: int = 0
    step_attempts: int = 0
    step_failures: int = 0
    durations: histogram.Histogram = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        self.completed += other.completed
        self.failed += other.failed
        self.step_attempts += other.step_attempts
        self.step_failures += other.step_failures
        self.durations = histogram.merge([self.durations, other.durations])


def ended_tasks(database: str, start: datetime, end: datetime) -> QuerySet[Any]:
    """``(workflow, hour, status, count)`` of the tasks completed or failed from ``start``
    to ``end`` (excluded), through ``salvador_task_finished``."""
    return (
        Task.objects.using(database)
        .filter(
            finished_at__gte=start,
            finished_at__lt=end,
            status__in=(TaskStatus.COMPLETED, TaskStatus.FAILED),
        )
        .annotate(hour=Trunc("finished_at", "hour", tzinfo=UTC))
        .order_by()
        .values_list("workflow", "hour", "status")
        .annotate(n=Count("pk"))
    )


def ended_attempts(database: str, start: datetime, end: datetime) -> QuerySet[Any]:
    """``(workflow, hour, bucket, count, failures)`` of the step attempts (not skipped
    ones, not compensations) that ended from ``start`` to ``end`` (excluded), through
    ``salvador_steprun_finished``."""
    return (
        StepRun.objects.using(database)
        .filter(finished_at__gte=start, finished_at__lt=end, compensation=False)
        .exclude(status=StepRunStatus.SKIPPED)
        .annotate(
            hour=Trunc("finished_at", "hour", tzinfo=UTC),
            bucket=bucket_of(Seconds(F("finished_at"), F("started_at"))),
        )
        .order_by()
        .values_list("task__workflow", "hour", "bucket")
        .annotate(n=Count("pk"), failures=Count("pk", filter=Q(status=StepRunStatus.FAILED)))
    )


def aggregate(database: str, start: datetime, end: datetime) -> dict[tuple[str, datetime], Counts]:
    """Counts by ``(workflow, hour)`` of what ended from ``start`` to ``end`` (excluded):
    tasks completed and failed (by their status now: a failed task requeued since and
    completed counts as completed, in the hour it completed), and step attempts with
    their durations. Two queries, each through an index on ``finished_at``."""
    found: dict[tuple[str, datetime], Counts] = {}

    def counts(workflow: str, hour: datetime) -> Counts:
        return found.setdefault((workflow, hour), Counts())

    for workflow, hour, status, n in ended_tasks(database, start, end):
        item = counts(workflow, hour)
        if status == TaskStatus.COMPLETED:
            item.completed += n
        else:
            item.failed += n
    for workflow, hour, bucket, n, failures in ended_attempts(database, start, end):
        item = counts(workflow, hour)
        item.step_attempts += n
        item.step_failures += failures
        key = str(int(bucket))
        item.durations[key] = item.durations.get(key, 0) + n
    return found


def roll_up(database: str, now: datetime | None = None, *, every: float = INTERVAL) -> int:
    """Write the hourly statistics of the closed hours not rolled up yet (within
    :data:`HORIZON`) and of the last :data:`RECHECK_HOURS` closed hours again; delete
    those older than :data:`RETENTION`. Idempotent: any number of processes may call it
    at once. Does nothing when the last closed hour was rolled up less than ``every``
    seconds ago (by any process). Returns how many hours it computed."""
    now = now or timezone.now()
    open_hour = hour_of(now)
    stats = HourlyStats.objects.using(database)
    last = stats.filter(workflow=ALL_WORKFLOWS).order_by("-hour").values("hour", "rolled_at")
    latest = last.first()
    if (
        latest is not None
        and latest["hour"] == open_hour - HOUR
        and timezone.now() - latest["rolled_at"] < timedelta(seconds=every)
    ):
        return 0
    first = open_hour - HORIZON
    if latest is not None:
        first = max(first, latest["hour"] + HOUR)
    first = min(first, open_hour - RECHECK_HOURS * HOUR)
    found = aggregate(database, first, open_hour)
    hours = int((open_hour - first) / HOUR)
    totals = {first + n * HOUR: Counts() for n in range(hours)}
    for (_workflow, hour), counts in found.items():
        totals[hour].add(counts)
    found.update({(ALL_WORKFLOWS, hour): counts for hour, counts in totals.items()})
    stamp = timezone.now()
    rows = [
        HourlyStats(
            workflow=workflow,
            hour=hour,
            completed=counts.completed,
            failed=counts.failed,
            step_attempts=counts.step_attempts,
            step_failures=counts.step_failures,
            durations=counts.durations,
            rolled_at=stamp,
        )
        for (workflow, hour), counts in found.items()
    ]
    with transaction.atomic(using=database):
        stats.bulk_create(
            rows,
            update_conflicts=True,
            **dialect.conflict_target(connections[database], ["hour", "workflow"]),
            update_fields=[
                "completed", "failed", "step_attempts", "step_failures", "durations",
                "rolled_at",
            ],
        )  # fmt: skip
        # A workflow with nothing left in an hour recomputed (its tasks requeued since).
        stats.filter(hour__gte=first, hour__lt=open_hour, rolled_at__lt=stamp).delete()
        stats.filter(hour__lt=open_hour - RETENTION).delete()
    return hours


def roll_up_quietly(database: str) -> int:
    """:func:`roll_up` for a worker's sweep: an error is logged, never raised (the
    charts wait for the next sweep; the sweep's own work does not)."""
    try:
        return roll_up(database)
    except Exception as exc:  # a database down, or one without the duration math here
        logger.warning("salvador: cannot roll up the hourly statistics (%s)", exc)
        return 0
