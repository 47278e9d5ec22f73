"""The hourly roll-up on both databases: tasks and step attempts with known end times,
rolled up, read back from HourlyStats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from salvador_django import histogram
from salvador_django.models import HourlyStats, Task
from salvador_django.models.stats import ALL_WORKFLOWS
from salvador_django.rollup import HORIZON, HOUR, RETENTION, aggregate, roll_up
from salvador_django.status import StepRunStatus, TaskStatus
from tests.factories import StepRunFactory, ended_task

NOW = datetime(2026, 6, 2, 10, 20, tzinfo=UTC)
OPEN = datetime(2026, 6, 2, 10, tzinfo=UTC)
COMPLETED, FAILED = StepRunStatus.COMPLETED, StepRunStatus.FAILED


def rows(database: str) -> dict[tuple[str, str], HourlyStats]:
    return {
        (row.workflow, row.hour.astimezone(UTC).strftime("%H")): row
        for row in HourlyStats.objects.using(database).filter(hour__gte=OPEN - 6 * HOUR)
    }


def numbers(row: HourlyStats) -> tuple[int, int, int, int, dict[str, int]]:
    return (row.completed, row.failed, row.step_attempts, row.step_failures, row.durations)


def seed() -> None:
    seven = OPEN - 3 * HOUR  # 07:00
    for minute in (5, 10, 15):
        ended_task(seven + timedelta(minutes=minute), attempts=((0.25, COMPLETED),))
    ended_task(
        seven + timedelta(minutes=50),
        status=TaskStatus.FAILED,
        attempts=((2.0, FAILED), (2.0, FAILED)),
    )
    ended_task(seven + timedelta(minutes=30), workflow="flaky", attempts=((30.0, COMPLETED),))
    ended_task(OPEN - HOUR + timedelta(minutes=5))  # 09:05
    ended_task(OPEN + timedelta(minutes=5))  # the open hour: not rolled up
    ended_task(OPEN - HORIZON - HOUR)  # before the horizon: never rolled up
    skipped = ended_task(seven + timedelta(minutes=20), attempts=((0.1, COMPLETED),))
    StepRunFactory(task=skipped, index=1, status=StepRunStatus.SKIPPED)  # not an attempt
    StepRunFactory(
        task=skipped,
        index=0,
        compensation=True,
        started_at=seven + timedelta(minutes=21),
        finished_at=seven + timedelta(minutes=22),
    )  # an undo: not counted either


def test_roll_up_counts_what_ended_in_each_closed_hour_per_workflow(backend):
    seed()
    assert roll_up(backend, NOW) == 7 * 24  # the first roll-up reaches the horizon
    found = rows(backend)
    quarter, two = str(histogram.bucket(0.25)), str(histogram.bucket(2.0))
    tenth = str(histogram.bucket(0.1))
    assert numbers(found[("three-steps", "07")]) == (4, 1, 6, 2, {quarter: 3, two: 2, tenth: 1})
    assert numbers(found[("flaky", "07")]) == (1, 0, 1, 0, {str(histogram.bucket(30.0)): 1})
    assert numbers(found[(ALL_WORKFLOWS, "07")])[:4] == (5, 1, 7, 2)
    assert numbers(found[("three-steps", "09")]) == (1, 0, 0, 0, {})
    assert numbers(found[(ALL_WORKFLOWS, "08")]) == (0, 0, 0, 0, {})  # rolled up, empty
    assert ("three-steps", "10") not in found  # the open hour
    stats = HourlyStats.objects.using(backend)
    assert stats.filter(workflow=ALL_WORKFLOWS).count() == 7 * 24
    assert stats.filter(hour__lt=OPEN - HORIZON).count() == 0


def test_a_second_roll_up_recomputes_the_last_two_closed_hours_only(backend):
    seed()
    roll_up(backend, NOW)
    before = {key: numbers(row) for key, row in rows(backend).items()}
    assert roll_up(backend, NOW) == 0  # rolled up less than INTERVAL ago: nothing to do
    assert roll_up(backend, NOW, every=0) == 2
    assert {key: numbers(row) for key, row in rows(backend).items()} == before

    # A step attempt that ended at 08:30 committed late, and the 09:05 task requeued
    # (its end is gone): both seen at the next call, 08:00 and 09:00 being rechecked.
    late = ended_task(OPEN - 2 * HOUR + timedelta(minutes=30), attempts=((1.0, COMPLETED),))
    Task.objects.using(backend).filter(finished_at=OPEN - HOUR + timedelta(minutes=5)).update(
        status=TaskStatus.PENDING, finished_at=None
    )
    assert roll_up(backend, NOW, every=0) == 2
    found = rows(backend)
    assert numbers(found[("three-steps", "08")]) == (1, 0, 1, 0, {str(histogram.bucket(1.0)): 1})
    assert ("three-steps", "09") not in found
    assert numbers(found[(ALL_WORKFLOWS, "09")]) == (0, 0, 0, 0, {})
    assert late.pk

    # An hour later: 09:00 again and 10:00, now closed (whenever it was last rolled up).
    assert roll_up(backend, NOW + HOUR) == 2
    assert numbers(rows(backend)[("three-steps", "10")])[:2] == (1, 0)


def test_after_a_stop_the_roll_up_catches_up_from_its_last_hour(backend):
    seed()
    roll_up(backend, NOW)
    assert roll_up(backend, NOW + 5 * HOUR) == 5  # 09:00 (rechecked) to 13:00


def test_rows_older_than_the_retention_are_deleted(backend):
    old = OPEN - RETENTION - HOUR
    HourlyStats.objects.using(backend).create(workflow="flaky", hour=old, rolled_at=old)
    roll_up(backend, NOW)
    assert not HourlyStats.objects.using(backend).filter(hour=old).exists()


@pytest.mark.parametrize("seconds", [0.0, 0.0004, 0.003, 0.25, 1.7, 45.0, 3600.0, 200_000.0])
def test_the_database_buckets_a_duration_as_python_does(backend, seconds):
    ended_task(NOW, attempts=((seconds, COMPLETED),))
    [counts] = aggregate(backend, OPEN, OPEN + HOUR).values()
    assert counts.durations == {str(histogram.bucket(seconds)): 1}
