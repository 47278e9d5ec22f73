"""Graph tasks under real workers: ``runworkflows`` (threads and processes), both queues.

Independent steps of one task run at the same time on the worker that claimed it;
a worker killed while branches run loses no completed branch and replays only the
steps that were running.
"""

from __future__ import annotations

import signal
import time

import pytest

from salvador_django import TaskStatus, submit
from salvador_django.models import StepRun, Task
from salvador_django.status import StepRunStatus
from tests.support.tasks import expire_lease
from tests.support.waiting import wait_until
from tests.testapp.models import Event

pytestmark = pytest.mark.slow

BRANCHES = ("b1", "b2", "b3", "b4")


def status_of(backend: str, task: Task) -> str:
    return Task.objects.using(backend).values_list("status", flat=True).get(id=task.id)


def events(backend: str, task: Task) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = {}
    for event in Event.objects.using(backend).filter(task_id=task.id).order_by("started"):
        found.setdefault(event.step, []).append(event)
    return found


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_four_independent_one_second_steps_run_at_the_same_time(
    backend, queue_name, start_worker, pool
):
    if pool == "processes" and backend == "default":
        pytest.skip("the process pool on SQLite is covered by test_process_pool")
    start_worker("--concurrency", "4", "--pool", pool, "--poll-interval", "1")
    task = submit("diamond", {"sleep": dict.fromkeys(BRANCHES, 1.0)})
    wait_until(lambda: status_of(backend, task) == TaskStatus.COMPLETED, timeout=60)
    ran = events(backend, task)
    assert all(len(ran[name]) == 1 for name in ("a", *BRANCHES, "join"))
    branches = [ran[name][0] for name in BRANCHES]
    # All four were running at one moment: each began before any of them ended.
    assert max(e.started for e in branches) < min(e.finished for e in branches)
    stored = Task.objects.using(backend).get(id=task.id)
    assert stored.result == {name: {"step": name} for name in BRANCHES}


def test_a_worker_killed_during_branches_replays_only_the_running_steps(
    backend, queue_name, start_worker
):
    first = start_worker("--concurrency", "4", "--poll-interval", "1")
    task = submit("diamond", {"sleep": {"b1": 0.0, "b2": 0.0, "b3": 30.0, "b4": 30.0}})

    def slow_branches_started() -> bool:
        ran = events(backend, task)
        return "b3" in ran and "b4" in ran and "b1" in ran and "b2" in ran

    wait_until(slow_branches_started, timeout=60)
    done = StepRun.objects.using(backend).filter(task_id=task.id, status=StepRunStatus.COMPLETED)
    wait_until(lambda: done.filter(name__in=["b1", "b2"]).count() == 2, timeout=30)
    first.signal(signal.SIGKILL)
    first.wait()
    time.sleep(0.2)
    Task.objects.using(backend).filter(id=task.id).update(body={})  # the replay is quick
    expire_lease(Task.objects.all(), backend)
    start_worker("--concurrency", "4", "--poll-interval", "1", sweep_interval=1)
    wait_until(lambda: status_of(backend, task) == TaskStatus.COMPLETED, timeout=90)
    ran = events(backend, task)
    assert {name: len(ran[name]) for name in ("a", *BRANCHES, "join")} == {
        "a": 1, "b1": 1, "b2": 1, "b3": 2, "b4": 2, "join": 1,
    }  # fmt: skip
    completed = done.values_list("name", flat=True)
    assert sorted(completed) == sorted(["a", *BRANCHES, "join"])  # one checkpoint each
