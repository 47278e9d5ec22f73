"""Waiting tasks under real workers: ``runworkflows`` (threads and processes) and Celery.

A waiting task holds no claim; a signal sent from here (another process) wakes it,
and a timer fires on time, whichever queue and pool run it.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from salvador_django import TaskStatus, send_signal, submit
from salvador_django.models import Task, Wait
from tests.support.waiting import wait_until
from tests.testapp.models import Event

pytestmark = pytest.mark.slow


def status_of(backend: str, task: Task) -> str:
    return Task.objects.using(backend).values_list("status", flat=True).get(id=task.id)


def starts(backend: str, task: Task, step: str) -> list[float]:
    """When each run of ``step`` of ``task`` started (the step's own clock)."""
    rows = Event.objects.using(backend).filter(task_id=task.id, step=step).order_by("id")
    return list(rows.values_list("started", flat=True))


def wait_for_status(backend: str, task: Task, status: str, timeout: float = 30) -> None:
    wait_until(lambda: status_of(backend, task) == status, timeout=timeout)


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_a_signal_wakes_a_waiting_task_that_held_no_worker(backend, queue_name, start_worker, pool):
    first = submit("approval", {})
    worker = start_worker("--concurrency", "1", "--pool", pool, "--poll-interval", "5")
    wait_for_status(backend, first, TaskStatus.WAITING)
    stored = Task.objects.using(backend).get(id=first.id)
    assert (stored.claimed_by, stored.lease_expires_at) == (None, None)
    # Its only thread is free: another task runs while the first one waits.
    second = submit("approval", {})
    wait_for_status(backend, second, TaskStatus.WAITING)
    sent = time.time()
    send_signal(first.id, "approval", {"ok": 1})
    wait_for_status(backend, first, TaskStatus.COMPLETED)
    resumed = starts(backend, first, "decide")[-1]
    if backend == "postgres" or queue_name == "redis":  # SQLite alone has no wake-up: it polls
        assert resumed - sent < 5, "woken, not found by the 5 s poll"  # typically milliseconds
    assert Task.objects.using(backend).get(id=first.id).state["answer"] == {"ok": 1}
    assert status_of(backend, second) == TaskStatus.WAITING
    assert "waiting for signal 'approval'" in worker.output()


def test_a_timer_fires_on_time_under_a_worker(backend, queue_name, start_worker):
    worker = start_worker("--concurrency", "1", "--poll-interval", "1")
    worker.wait_for_output("started (")  # so that the task does wait, however slow the start
    until = timezone.now() + timedelta(seconds=1.5)
    task = submit("sleeps-until", {"until": until.isoformat()})
    wait_for_status(backend, task, TaskStatus.COMPLETED, timeout=20)
    _first, again = starts(backend, task, "nap")
    assert again >= until.timestamp() - 0.05  # never early (the clocks are the same host's)
    assert again - until.timestamp() < 2  # and not late by a poll interval and more
    wait = Wait.objects.using(backend).get(task_id=task.id)
    assert wait.outcome == "slept"


def test_a_paused_waiting_task_resumes_under_a_worker(backend, queue_name, start_worker):
    task = submit("approval", {})
    start_worker("--concurrency", "1")
    wait_for_status(backend, task, TaskStatus.WAITING)
    stored = Task.objects.using(backend).get(id=task.id)
    stored.pause()
    send_signal(task.id, "approval", "later")
    time.sleep(0.5)
    assert status_of(backend, task) == TaskStatus.PAUSED  # the signal is kept, not acted on
    stored.resume()
    wait_for_status(backend, task, TaskStatus.COMPLETED)
    assert Task.objects.using(backend).get(id=task.id).state["answer"] == "later"
