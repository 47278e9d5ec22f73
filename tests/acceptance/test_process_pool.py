"""``runworkflows --pool processes``: a hung step's process is killed and replaced."""

import multiprocessing
import os
import signal
import subprocess

import pytest
from django.db import connections

from salvador_django import TaskStatus, submit
from salvador_django.models import Task, WorkerKind, WorkerProcess
from salvador_django.pool import ProcessPool, _child_main
from salvador_django.worker import WorkerOptions
from tests.factories import TaskFactory
from tests.support.processes import group_alive
from tests.support.waiting import wait_until
from tests.testapp.models import Event
from tests.testapp.workflows import LONG_STEP_NAME


def status(backend, task):
    return Task.objects.using(backend).get(id=task.id).status


def test_a_step_sleeping_forever_is_killed_and_its_slot_goes_on(backend, start_worker):
    stuck = submit("hangs-forever", {})
    pool = start_worker("--pool", "processes", "--concurrency", "1")
    wait_until(lambda: status(backend, stuck) == TaskStatus.FAILED, timeout=30)
    after = submit("three-steps", {})
    wait_until(lambda: status(backend, after) == TaskStatus.COMPLETED, timeout=30)
    pool.signal(signal.SIGTERM)
    assert pool.wait() == 0
    stored = Task.objects.using(backend).get(id=stuck.id)
    assert stored.attempt == 2  # the timeout was retried once, then failed the task
    assert stored.error == (
        "StepTimeout: Step 'stuck' ran longer than its timeout of 1s and its process was killed."
    )
    assert list(stored.step_runs.values_list("attempt", "status")) == [
        (1, "failed"),
        (2, "failed"),
    ]
    assert pool.output().count("hung past its timeout of 1s; killed process") == 2


def test_a_hung_step_with_a_long_name_of_four_byte_characters_is_killed(backend, start_worker):
    """The child's note to the supervisor arrives whole, whatever the step's name."""
    stuck = submit("hangs-with-a-long-name", {})
    pool = start_worker("--pool", "processes", "--concurrency", "1")
    wait_until(lambda: status(backend, stuck) == TaskStatus.FAILED, timeout=30)
    pool.signal(signal.SIGTERM)
    assert pool.wait() == 0
    stored = Task.objects.using(backend).get(id=stuck.id)
    assert stored.error == (
        f"StepTimeout: Step {LONG_STEP_NAME!r} ran longer than its timeout of 1s "
        "and its process was killed."
    )
    assert list(stored.step_runs.values_list("name", "attempt", "status")) == [
        (LONG_STEP_NAME, 1, "failed")
    ]
    assert pool.output().count(f"step {LONG_STEP_NAME!r} hung past its timeout of 1s") == 1


def test_the_pool_runs_tasks_on_several_processes_and_drains_on_sigterm(backend, start_worker):
    tasks = [submit("three-steps", {"sleep": {"second": 0.05}}) for _ in range(20)]
    pool = start_worker("--pool", "processes", "--concurrency", "2")
    wait_until(lambda: all(status(backend, t) == TaskStatus.COMPLETED for t in tasks), timeout=60)
    # Each child is in the workers table, the supervisor (which runs nothing) is not.
    children = WorkerProcess.objects.using(backend).filter(kind=WorkerKind.POOL_CHILD)
    assert children.count() == 2
    assert pool.pid not in set(children.values_list("pid", flat=True))
    pool.signal(signal.SIGTERM)
    assert pool.wait() == 0
    assert not WorkerProcess.objects.using(backend).exists()  # the children left as they stopped
    workers = set(
        Task.objects.using(backend)
        .filter(id__in=[t.id for t in tasks])
        .values_list("step_runs__worker", flat=True)
    )
    assert len(workers) == 2  # two child processes did the work


def test_burst_with_a_process_pool_exits_when_nothing_is_due(backend, start_worker):
    tasks = [submit("three-steps", {}) for _ in range(5)]
    pool = start_worker("--pool", "processes", "--concurrency", "2", "--burst")
    assert pool.wait(timeout=60) == 0
    assert all(status(backend, t) == TaskStatus.COMPLETED for t in tasks)


def test_a_pool_warns_of_tasks_of_unregistered_workflows_once(backend, start_worker):
    TaskFactory(workflow="retired-workflow", step_name="old-step")
    pool = start_worker("--pool", "processes", "--concurrency", "2", "--burst")
    assert pool.wait(timeout=60) == 0
    warning = "1 pending task(s) of workflow 'retired-workflow', which is not registered"
    assert pool.output().count(warning) == 1  # by the supervisor, not by each child


@pytest.mark.parametrize(("workflow", "code"), [("kills-worker", -9), ("exits-worker", 1)])
def test_a_step_that_kills_its_worker_is_failed_as_poison(backend, start_worker, workflow, code):
    poison = submit(workflow, {})
    pool = start_worker(
        "--pool",
        "processes",
        "--concurrency",
        "1",
        lease_seconds=1,
        sweep_interval=0.3,
        SALVADOR_TEST_MAX_RECOVERIES="2",
    )
    wait_until(lambda: status(backend, poison) == TaskStatus.FAILED, timeout=60)
    stored = Task.objects.using(backend).get(id=poison.id)
    assert stored.error == ("Lease expired 2 times: the step keeps killing or stalling its worker.")
    assert stored.recoveries == 2, pool.output()
    after = submit("three-steps", {})  # the pool lives on
    wait_until(lambda: status(backend, after) == TaskStatus.COMPLETED, timeout=30)
    assert pool.output().count(f"exited (code {code}); starting another") == 2
    pool.signal(signal.SIGTERM)
    assert pool.wait() == 0


def test_children_stop_when_their_supervisor_is_killed(backend, start_worker):
    pool = start_worker("--pool", "processes", "--concurrency", "2")
    pool.wait_for_output("pool slot 1 runs process")
    children = [
        int(line.rsplit(" ", 1)[1]) for line in pool.output().splitlines() if "runs process" in line
    ]
    pool.signal(signal.SIGKILL)
    pool.wait()

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie of the killed supervisor is gone too: it is not running.
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] == "Z"

    wait_until(
        lambda: all(gone(pid) for pid in children),
        timeout=15,
        interval=0.1,
        message="pool children outlived their supervisor",
    )


@pytest.mark.parametrize("supervisor", ["running", "killed alone"])
def test_teardown_kills_the_whole_group_of_a_pool_worker(backend, start_worker, supervisor):
    """A pool child left running would claim the tasks of later tests."""
    tasks = [submit("three-steps", {"sleep": {"first": 300}}) for _ in range(2)]
    pool = start_worker("--pool", "processes", "--concurrency", "2")
    # Both children are in a step they would finish before stopping on their own.
    wait_until(
        lambda: Event.objects.using(backend).filter(task_id__in=[t.id for t in tasks]).count() == 2
    )
    children = [
        int(line.rsplit(" ", 1)[1]) for line in pool.output().splitlines() if "runs process" in line
    ]
    assert len(children) == 2
    assert {os.getpgid(pid) for pid in children} == {pool.pgid}  # the children share its group
    if supervisor == "killed alone":
        pool.signal(signal.SIGKILL)  # its children are orphans now, still in its group
        pool.wait()

    start_worker.close()  # what the fixture's teardown runs, whatever the test's outcome

    # Killed at once; init reaps the orphans a moment later (a zombie still counts).
    wait_until(lambda: not group_alive(pool.pgid), timeout=5)
    with pytest.raises(ProcessLookupError):
        os.killpg(pool.pgid, 0)


@pytest.mark.only_backend("sqlite")
def test_a_child_whose_supervisor_died_before_it_looked_stops_at_once(backend):
    # The supervisor passes its pid: a child that asked os.getppid() itself would, if
    # the supervisor died before it asked, watch its new parent and run on for ever.
    finished = subprocess.Popen(["true"])
    finished.wait()
    context = multiprocessing.get_context("fork")
    connections.close_all()  # as the supervisor does: a child must not share them
    child = context.Process(
        target=_child_main,
        args=(
            context.Array("c", 2048),
            WorkerOptions.from_settings(workflows=["three-steps"]),
            None,
            finished.pid,
        ),
    )
    child.start()
    child.join(20)
    if child.exitcode is None:
        child.kill()
        child.join()
        pytest.fail("a pool child whose supervisor was gone kept running")
    assert child.exitcode == 0


@pytest.mark.only_backend("sqlite")
def test_a_slot_that_empties_once_the_pool_is_stopping_stays_empty(backend):
    # The supervisor's SIGTERM handler can run between a child's kill and its
    # replacement: a replacement started then would never be asked to stop.
    pool = ProcessPool(WorkerOptions.from_settings(workflows=["three-steps"]))
    pool.stop()
    pool._start(pool.slots[0])
    assert pool.slots[0].process is None
    assert pool.run() is True  # nothing to wait for
