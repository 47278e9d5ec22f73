"""The overview's last 24 hours, per workflow: tasks completed and failed per hour, step
durations (p50, p95), read from the hourly roll-up plus the hour still open, counted
live. Three queries, whatever the size of the task table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.safestring import SafeString

from salvador_django.admin.chart_svg import durations_svg, tasks_svg
from salvador_django.admin.charts import Slot, durations_chart, tasks_chart
from salvador_django.admin.durations import format_duration
from salvador_django.histogram import merge, percentile
from salvador_django.models import HourlyStats
from salvador_django.models.stats import ALL_WORKFLOWS
from salvador_django.registry import registry
from salvador_django.rollup import HOUR, Counts, aggregate, hour_of

HOURS = 24  # the hours shown, the open one included


@dataclass
class Activity:
    """One workflow's last :data:`HOURS` hours."""

    workflow: str
    slots: list[Slot] = field(default_factory=list)
    number: int = 0  # its row's, from 1: the ids of its charts' titles

    @property
    def tasks_chart_id(self) -> str:
        return f"salvador-tasks-{self.number}"

    @property
    def durations_chart_id(self) -> str:
        return f"salvador-durations-{self.number}"

    @property
    def totals(self) -> Counts:
        total = Counts()
        for slot in self.slots:
            if slot.counts is not None:
                total.add(slot.counts)
        return total

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile of the step attempts' durations over every hour."""
        return percentile(merge(s.counts.durations for s in self.slots if s.counts), q)

    @property
    def p50(self) -> str:
        value = self.percentile(50)
        return "" if value is None else format_duration(value)

    @property
    def p95(self) -> str:
        value = self.percentile(95)
        return "" if value is None else format_duration(value)

    @property
    def tasks_chart(self) -> SafeString:
        """The tasks per hour, as inline SVG."""
        return tasks_svg(tasks_chart(self.workflow, self.slots), self.tasks_chart_id)

    @property
    def durations_chart(self) -> SafeString | None:
        """The step durations per hour, as inline SVG; None without any."""
        chart = durations_chart(self.workflow, self.slots)
        return None if chart is None else durations_svg(chart, self.durations_chart_id)


@dataclass
class LastDay:
    activities: list[Activity]
    missing_hours: int  # closed hours of the window not rolled up yet


def last_day(database: str, now: datetime | None = None) -> LastDay:
    """Every registered workflow's last :data:`HOURS` hours, and those of any workflow
    with tasks in them.

    The closed hours come from :class:`HourlyStats`; the open hour, and the one before
    it while it is not rolled up yet, are counted live (at most two hours of rows, read
    through the ``finished_at`` indexes). Older hours not rolled up yet are missing.
    """
    now = now or timezone.now()
    open_hour = hour_of(now)
    first = open_hour - (HOURS - 1) * HOUR
    found: dict[tuple[str, datetime], Counts] = {}
    rolled: set[datetime] = set()
    for row in HourlyStats.objects.using(database).filter(hour__gte=first, hour__lt=open_hour):
        if row.workflow == ALL_WORKFLOWS:
            rolled.add(row.hour)
            continue
        found[(row.workflow, row.hour)] = Counts(
            completed=row.completed,
            failed=row.failed,
            step_attempts=row.step_attempts,
            step_failures=row.step_failures,
            durations=row.durations,
        )
    live_from = open_hour if open_hour - HOUR in rolled else open_hour - HOUR
    found.update(aggregate(database, live_from, open_hour + HOUR))
    live = {live_from + n * HOUR for n in range(int((open_hour - live_from) / HOUR) + 1)}
    known = rolled | live
    hours = [first + n * HOUR for n in range(HOURS)]
    names = set(registry.names()) | {workflow for workflow, _hour in found}
    activities = [
        Activity(
            name,
            [
                Slot(
                    hour,
                    found.get((name, hour), Counts()) if hour in known else None,
                    live=hour in live,
                )
                for hour in hours
            ],
            number=number,
        )
        for number, name in enumerate(sorted(names), 1)
    ]
    return LastDay(activities, missing_hours=sum(hour not in known for hour in hours))
