"""Django tasks on ``runworkflows`` processes: a worker killed mid-task (SIGKILL) and
another that runs the task again; ``--queue-name`` in a real process."""

from __future__ import annotations

import signal
import socket
from typing import Any

import pytest

from salvador_django.models import StepRun, Task
from salvador_django.status import StepRunStatus
from salvador_django.tasks import compat
from salvador_django.tasks.results import LOST
from tests.integration.test_django_tasks import finished
from tests.support.tasks import expire_lease
from tests.support.waiting import wait_until
from tests.testapp import more_tasks, tasks

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("salvador_tasks")]

RUNNING = compat.TaskResultStatus.RUNNING
SUCCESSFUL, READY = compat.TaskResultStatus.SUCCESSFUL, compat.TaskResultStatus.READY


def worker_id(worker: Any) -> str:
    """A ``runworkflows`` process's name in the records (``host:pid``)."""
    return f"{socket.gethostname()}:{worker.pid}"


def test_a_django_task_whose_worker_is_killed_runs_again_on_another_worker(
    backend, start_worker, tmp_path
):
    started, release = tmp_path / "started", tmp_path / "release"
    result = more_tasks.gate.enqueue(str(started), str(release))
    first = start_worker("--concurrency", "1", sweep_interval=0.5, SALVADOR_TEST_TASKS="1")
    wait_until(started.exists, message=f"never started; worker output:\n{first.output()}")
    result.refresh()
    assert (result.status, result.worker_ids) == (RUNNING, [worker_id(first)])
    first.signal(signal.SIGKILL)
    first.wait()
    started.unlink()
    result.refresh()
    assert result.status == RUNNING  # until its lease runs out
    assert expire_lease(Task.objects.using(backend).get(id=result.id), backend) == 1
    release.touch()
    second = start_worker("--concurrency", "1", sweep_interval=0.5, SALVADOR_TEST_TASKS="1")
    wait_until(lambda: finished(result), message=f"never finished:\n{second.output()}")
    assert (result.status, result.return_value) == (SUCCESSFUL, "released"), result.errors
    assert started.exists()  # the second worker ran the task again, from its start
    assert "returned 1 task(s) with an expired lease to pending" in second.output()
    # The killed attempt wrote no StepRun (its worker died); the reaper counted it, so
    # the result has two attempts: the lost one, then the second worker's.
    runs = StepRun.objects.using(backend).filter(task_id=result.id)
    assert [(r.status, r.worker) for r in runs] == [(StepRunStatus.COMPLETED, worker_id(second))]
    assert result.worker_ids == [LOST, worker_id(second)]
    assert (result.attempts, result.errors) == (2, [])


def test_runworkflows_queue_name_in_a_process_runs_only_that_queue(backend, start_worker):
    default = tasks.add.enqueue(1, 2)
    other = tasks.add.using(queue_name="other").enqueue(3, 4)
    worker = start_worker("--burst", "--queue-name", "other", SALVADOR_TEST_TASKS="1")
    assert worker.wait() == 0, worker.output()
    assert "workflows: django.tasks:other)" in worker.output()
    other.refresh()
    default.refresh()
    assert (other.status, other.return_value, default.status) == (SUCCESSFUL, 7, READY)
    assert other.worker_ids == [worker_id(worker)]


def test_runworkflows_refuses_an_unknown_queue_name_in_a_process(backend, start_worker):
    pending = tasks.add.enqueue(1, 2)
    worker = start_worker("--burst", "--queue-name", "nowhere", SALVADOR_TEST_TASKS="1")
    assert worker.wait() == 1
    assert "CommandError: --queue-name: no task backend has a queue named 'nowhere'." in (
        worker.output()
    )
    assert tasks.add.get_result(pending.id).status == READY
