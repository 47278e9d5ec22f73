"""``manage.py showschedules``: each schedule, in plain words, with its next run times."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError
from salvador_django.models import Schedule as ScheduleRow
from salvador_django.models import Task
from salvador_django.schedules import Schedule
from salvador_django.scheduling import declared_schedules

MAX_COUNT = 1000


def count(value: str) -> int:
    """A number of run times: 0 to MAX_COUNT."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number.") from None
    if not 0 <= number <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"give 0 to {MAX_COUNT}, not {number}.")
    return number


def moment(value: str) -> datetime:
    """An ISO 8601 time; without an offset, in the current time zone (``TIME_ZONE``)."""
    parsed = parse_datetime(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date and time.")
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def local(moment: datetime, schedule: Schedule) -> str:
    """``moment`` in ``schedule``'s time zone: "2026-03-29 03:00:00 CEST +0200"."""
    return moment.astimezone(schedule.zone).strftime("%Y-%m-%d %H:%M:%S %Z %z")


@dataclass
class Listed:
    """One schedule as the command prints it."""

    name: str
    workflow: str
    schedule: Schedule | None  # None: its stored definition is not valid here
    expression: str
    paused: bool = False
    removed: bool = False  # no longer declared in code: it never runs
    last_run: str = ""
    overdue: str = ""  # its next run, when it is past: no worker has ticked it

    def lines(self, after: datetime, count: int) -> list[str]:
        lines = [f"{self.name}  (workflow {self.workflow})"]
        if self.schedule is None:
            lines.append(f"  {self.expression} — not valid here")
        else:
            lines.append(f"  {self.expression} — {self.schedule.describe()}")
        if self.removed:
            lines.append("  removed from the code: it no longer runs")
        elif self.paused:
            lines.append("  paused")
        if self.last_run:
            lines.append(f"  last run: {self.last_run}")
        if self.overdue:
            lines.append(f"  due since {self.overdue} (no worker has ticked it yet)")
        if self.schedule is None or self.removed or not count:
            return lines
        label = "next runs once resumed" if self.paused else "next runs"
        lines.append(f"  {label} ({self.schedule.timezone}):")
        for tick in upcoming(self.schedule, after, count):
            lines.append(f"    {local(tick, self.schedule)}")
        return lines


def upcoming(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The ``count`` first ticks of ``schedule`` after ``after``."""
    ticks: list[datetime] = []
    for _index in range(count):
        after = schedule.next_tick(after)
        ticks.append(after)
    return ticks


def from_table(database: str, after: datetime) -> list[Listed]:
    """The schedules in the table, with their last task's status (one query for all)."""
    rows = list(ScheduleRow.objects.using(database).order_by("name"))
    ids = [row.last_task_id for row in rows if row.last_task_id is not None]
    statuses = dict(Task.objects.using(database).filter(pk__in=ids).values_list("pk", "status"))
    listed = []
    for row in rows:
        try:
            schedule: Schedule | None = row.definition()
        except ConfigurationError:
            schedule = None
        item = Listed(
            row.name, row.workflow, schedule, row.expression(), row.paused, not row.active
        )
        if row.last_run_at is not None:
            item.last_run = local(row.last_run_at, schedule) if schedule else str(row.last_run_at)
            if row.last_task_id is not None:
                status = statuses.get(row.last_task_id, "deleted")
                item.last_run += f", task {row.last_task_id} ({status})"
        if schedule and row.active and not row.paused and row.next_run_at < after:
            item.overdue = local(row.next_run_at, schedule)
        listed.append(item)
    return listed


def from_code() -> list[Listed]:
    """The schedules the registered workflows declare (no database)."""
    return [
        Listed(name, workflow, schedule, schedule.expression())
        for name, (workflow, schedule) in sorted(declared_schedules().items())
    ]


class Command(BaseCommand):
    help = (
        "List the schedules (from the table the workers sync, or with --declared as the "
        "code declares them), each in plain words with its next run times in its time zone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--declared",
            action="store_true",
            help="List the schedules the code declares, without reading the database.",
        )
        parser.add_argument(
            "--count",
            type=count,
            default=5,
            metavar="N",
            help=f"How many next run times to list per schedule (0 to {MAX_COUNT}; default 5).",
        )
        parser.add_argument(
            "--after",
            type=moment,
            default=None,
            metavar="TIME",
            help="List the run times after this ISO 8601 time (default: now); without an "
            "offset it is read in the TIME_ZONE setting.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        after = options["after"] or timezone.now()
        if options["declared"]:
            listed, none = from_code(), "No schedule is declared."
        else:
            listed = from_table(get_settings().DATABASE, after)
            none = "No schedule in the table (workers copy the declared ones when they start)."
        if not listed:
            self.stdout.write(none)
            return
        for position, item in enumerate(listed):
            if position:
                self.stdout.write("")
            self.stdout.write("\n".join(item.lines(after, options["count"])))
