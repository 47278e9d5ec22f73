"""Timers of waiting tasks: a sleep's end, a wait's timeout.

A waiting task with a timer has ``wake_at`` (the database's clock). When it passes,
the task is woken (the ``WAKE`` move) and announced; its step runs again and finds
the sleep over, or the wait timed out. Workers fire timers in a thread of their own
(:class:`salvador_django.worker.Worker`), sleeping until the soonest one; a Celery
deployment fires each when its delayed message arrives, and in its beat sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models.functions import Now

from salvador_django import transitions
from salvador_django.models import Task
from salvador_django.status import TaskStatus

#: The most timers fired by one statement; more wait for the next round, at once.
FIRE_BATCH = 1000


def fire_due_timers(database: str, ids: Sequence[Any] | None = None) -> list[Task]:
    """Wake the waiting tasks (of ``ids``, if given) whose timer is due; returns them.

    The tasks returned hold what an announcement needs (id, workflow, priority). A
    task woken by a signal meanwhile is returned too: announcing it twice is harmless.
    """
    due = Task.objects.using(database).filter(status=TaskStatus.WAITING, wake_at__lte=Now())
    if ids is not None:
        due = due.filter(id__in=list(ids))
    found = list(due.order_by("wake_at").values_list("id", "workflow", "priority")[:FIRE_BATCH])
    if not found:
        return []
    with transaction.atomic(using=database):
        transitions.WAKE.apply(
            Task.objects.using(database),
            where={"id__in": [row[0] for row in found], "wake_at__lte": Now()},
        )
    woken = []
    for task_id, workflow, priority in found:
        task = Task(id=task_id, workflow=workflow, priority=priority)
        task._state.db = database
        woken.append(task)
    return woken


def seconds_to_next_timer(database: str) -> float | None:
    """Seconds until the soonest timer of a waiting task (database clock); None if none."""
    row = (
        Task.objects.using(database)
        .filter(status=TaskStatus.WAITING, wake_at__isnull=False)
        .annotate(now=Now())
        .order_by("wake_at")
        .values_list("wake_at", "now")
        .first()
    )
    if row is None or row[0] is None or row[1] is None:
        return None
    return float((row[0] - row[1]).total_seconds())
