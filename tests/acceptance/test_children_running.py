"""Parents and children under real workers: ``runworkflows`` (threads and processes).

The fan-in is the commit that ends the last awaited child, whichever worker makes it;
a worker killed while children run loses none and starts none twice.
"""

from __future__ import annotations

import signal
import time

import pytest

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from tests.support.tasks import expire_lease
from tests.support.waiting import wait_until
from tests.testapp.models import Event

pytestmark = pytest.mark.slow


def status_of(backend: str, task: Task) -> str:
    return Task.objects.using(backend).values_list("status", flat=True).get(id=task.id)


def square_runs(backend: str, parent: Task) -> dict[str, int]:
    """How many times each child (by key) ran its step."""
    rows = Task.objects.using(backend).filter(parent_id=parent.id).values_list("id", "child_key")
    children = {task_id: str(key) for task_id, key in rows}
    runs: dict[str, int] = dict.fromkeys(children.values(), 0)
    for task_id in (
        Event.objects.using(backend)
        .filter(task_id__in=list(children), step="square")
        .values_list("task_id", flat=True)
    ):
        runs[children[task_id]] += 1
    return runs


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_a_parent_resumes_when_its_last_child_ends_on_another_thread(
    backend, queue_name, start_worker, pool
):
    if pool == "processes" and backend == "default":
        pytest.skip("the process pool on SQLite is covered by test_process_pool")
    start_worker("--concurrency", "4", "--pool", pool, "--poll-interval", "5")
    parents = [submit("fan-out", {"count": 40}) for _ in range(3)]
    for parent in parents:
        wait_until(lambda p=parent: status_of(backend, p) == TaskStatus.COMPLETED, timeout=60)
    for parent in parents:
        stored = Task.objects.using(backend).get(id=parent.id)
        assert stored.result == sum(n * n for n in range(40))
        assert set(square_runs(backend, parent).values()) == {1}
        # Resumed by the last child's commit, not found by the 5 s poll (SQLite alone polls).
        spreads = Event.objects.using(backend).filter(task_id=parent.id, step="spread")
        started = sorted(spreads.values_list("started", flat=True))
        assert len(started) == 2
        last_child = max(
            Task.objects.using(backend)
            .filter(parent_id=parent.id)
            .values_list("finished_at", flat=True)
        )
        if backend == "postgres" or queue_name == "redis":
            assert started[1] - last_child.timestamp() < 4


def test_a_worker_killed_while_children_run_loses_none_and_starts_none_twice(
    backend, queue_name, start_worker
):
    first = start_worker("--concurrency", "4", "--poll-interval", "1")
    parent = submit("fan-out", {"count": 30, "sleep": 0.1})
    wait_until(lambda: Event.objects.using(backend).filter(step="square").count() >= 5, timeout=60)
    first.signal(signal.SIGKILL)
    first.wait()
    time.sleep(0.2)
    expire_lease(Task.objects.all(), backend)  # the killed worker's leases ran out
    start_worker("--concurrency", "4", "--poll-interval", "1", sweep_interval=1)
    wait_until(lambda: status_of(backend, parent) == TaskStatus.COMPLETED, timeout=90)
    stored = Task.objects.using(backend).get(id=parent.id)
    assert stored.result == sum(n * n for n in range(30))
    runs = square_runs(backend, parent)
    assert sorted(runs) == sorted(f"#{n}" for n in range(1, 31))  # one child per key
    # Only a child running at the kill may have run twice.
    assert all(1 <= count <= 2 for count in runs.values())
    assert sum(count == 2 for count in runs.values()) <= 4
