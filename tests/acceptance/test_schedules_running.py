"""Schedules under real workers: two ``runworkflows`` processes tick the same schedules,
and every tick submits exactly one task, which runs; both queues, both databases."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise

import pytest

from salvador_django.models import Schedule, Task
from salvador_django.status import TaskStatus
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

TICKS = 6  # seconds of ticks each schedule must produce


def ticks_of(backend: str, name: str) -> list[datetime]:
    """The tick times of the tasks the schedule ``name`` submitted, in order."""
    tasks = Task.objects.using(backend).filter(idempotency_key__startswith=f"schedule:{name}:")
    return sorted(
        datetime.fromisoformat(m["scheduled_for"]) for m in tasks.values_list("meta", flat=True)
    )


def test_two_workers_submit_one_task_per_tick_and_run_it(backend, queue_name, start_worker):
    for _ in range(2):
        start_worker("--concurrency", "2", "--poll-interval", "1", SALVADOR_TEST_SCHEDULES="1")
    ticking = Task.objects.using(backend).filter(workflow="ticking")
    wait_until(
        lambda: (
            ticking.filter(status=TaskStatus.COMPLETED, meta__scheduled_for__isnull=False).count()
            >= 2 * TICKS
        ),
        timeout=60,
    )
    rows = {row.name: row for row in Schedule.objects.using(backend)}
    assert set(rows) == {"ticking-1s", "ticking-cron-2s"}  # synced once, by both workers
    for name, step in (("ticking-1s", 1), ("ticking-cron-2s", 2)):
        times = ticks_of(backend, name)
        assert len(times) >= 2
        gaps = {(later - earlier).total_seconds() for earlier, later in pairwise(times)}
        assert gaps == {float(step)}, (name, times)  # none twice, none skipped
    for task in ticking.filter(status=TaskStatus.COMPLETED):
        assert task.idempotency_key.endswith(task.meta["scheduled_for"])
