"""Waiting for a condition, a worker thread, or a task to finish; running in threads."""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from salvador_django.models import Task
from salvador_django.status import TaskStatus
from salvador_django.testing import run_until_idle
from salvador_django.worker import Worker, WorkerOptions
from tests.testapp.models import Event


def run_in_threads(target: Callable[[int], Any], count: int) -> list[Any]:
    """Run ``target(i)`` in ``count`` threads started together; returns results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def assert_ran_in_order_once(alias, task_ids, steps=("first", "second", "third")) -> set[int]:
    """Each step of each task ran exactly once, each after the previous one finished.

    Returns the process ids that ran steps.
    """
    by_task = defaultdict(list)
    for event in Event.objects.using(alias).order_by("started", "id"):
        by_task[event.task_id].append(event)
    assert set(by_task) == set(task_ids)
    for task_id, runs in by_task.items():
        assert [e.step for e in runs] == list(steps), task_id
        for before, after in itertools.pairwise(runs):
            assert before.finished is not None
            assert before.finished <= after.started, task_id
    return {e.pid for runs in by_task.values() for e in runs}


def wait_until(
    condition: Callable[[], bool],
    timeout: float = 30,
    interval: float = 0.02,
    message: str = "condition not met in time",
) -> None:
    """Poll ``condition`` until it holds; fail the test with ``message`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(interval)


def run_until_finished(task: Task, timeout: float = 10) -> Task:
    """``run_until_idle`` until ``task`` completes or fails, its backoffs waited out in real time.

    For tests of the backoff's timing; elsewhere, ``make_due`` ends a backoff at once.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_until_idle()
        task.refresh_from_db()
        if task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
            return task
        time.sleep(0.01)
    raise AssertionError(f"task still {task.status} after {timeout}s")


@contextmanager
def running_worker(**options: Any) -> Iterator[Worker]:
    """A worker running in a thread for the block; stopped (and checked stopped) after it."""
    worker = Worker(WorkerOptions.from_settings(**options))
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        yield worker
    finally:
        worker.stop()
        runner.join(timeout=30)
    assert not runner.is_alive(), "the worker did not stop"
