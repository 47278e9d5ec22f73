"""Timers of waiting tasks (a sleep's end, a wait's timeout), and schedules' ticks.

A waiting task with a timer has ``wake_at`` (the database's clock). When it passes,
the task is woken (the ``WAKE`` move) and announced; its step runs again and finds
the sleep over, or the wait timed out. Workers fire timers in a thread of their own
(:class:`salvador_django.worker.Worker`), sleeping until the soonest one; a Celery
deployment fires each when its delayed message arrives, and in its beat sweep. The
timer thread ticks schedules too (:mod:`salvador_django.scheduling`), sleeping until
the soonest of both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from django.db import close_old_connections, connections, transaction
from django.db.models.functions import Now

from salvador_django import transitions
from salvador_django.backoff import backoff_delay, close_connections, log_error
from salvador_django.models import Task
from salvador_django.queues import Entry, Queue, announce
from salvador_django.scheduling import tick_due
from salvador_django.status import TaskStatus

logger = logging.getLogger("salvador_django")

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


class TimerThread(threading.Thread):
    """A worker's timer thread: wakes waiting tasks whose timer is due, and announces them.

    It sleeps until the soonest timer (on the database's clock), looking again at
    least every ``poll_interval`` for timers other processes set, and at once when
    nudged (a task of this worker began to wait). Many workers may fire the same
    timer: the move is conditional, and a task is announced twice at worst.
    """

    def __init__(
        self, database: str, queue: Queue, poll_interval: float, stopping: threading.Event
    ) -> None:
        super().__init__(name="salvador-timers", daemon=True)
        self.database = database
        self.queue = queue
        self.poll_interval = poll_interval
        self.stopping = stopping
        self._nudged = threading.Event()

    def nudge(self) -> None:
        """Look again for the soonest timer now (or notice that the worker stops)."""
        self._nudged.set()

    def run(self) -> None:
        errors = 0
        while not self.stopping.is_set():
            self._nudged.clear()
            try:
                asked = time.monotonic()
                soonest = seconds_to_next_timer(self.database)
                fired = soonest is not None and soonest <= 0
                if fired:
                    woken = fire_due_timers(self.database)
                    if woken:
                        announce([Entry.of(task) for task in woken], self.queue)
                        logger.debug("salvador: %d timer(s) fired", len(woken))
                tick = tick_due(self.database)  # each round: timers never hold ticks up
                if fired or (tick is not None and tick <= 0):
                    continue  # more may be due
                if tick is not None:
                    soonest = tick if soonest is None else min(soonest, tick)
                if soonest is not None:  # counted from the question, not the answer
                    soonest -= time.monotonic() - asked
                errors = 0
            except Exception as exc:  # no error ends the timers: they back off and go on
                delay = backoff_delay(errors)
                errors += 1
                log_error(exc, "cannot fire timers (%s); retrying in %ss", delay)
                close_connections()
                self.stopping.wait(delay)
                continue
            wait = self.poll_interval
            if soonest is not None:
                wait = min(wait, max(soonest, 0.001))
            if wait >= self.poll_interval:
                close_old_connections()  # an idle thread keeps to CONN_MAX_AGE too
            self._nudged.wait(wait)
        connections.close_all()
