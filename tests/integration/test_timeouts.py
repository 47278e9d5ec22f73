"""Step timeouts: a step that never returns must not hold a worker slot."""

import threading

import pytest

from salvador_django import Retry, TaskStatus, Workflow
from salvador_django.models import Task
from tests.support.waiting import running_worker, wait_until

FOREVER = threading.Event()  # set at teardown, so that "forever" ends with the test


@pytest.fixture
def hangs(workflow_names):
    FOREVER.clear()
    workflow_names.extend(["hangs", "quick"])
    hangs = Workflow("hangs")

    @hangs.step("stuck", timeout=0.3, retry=Retry(max_attempts=2, initial_delay=0))
    def stuck(task):
        FOREVER.wait()  # blocks until the test ends: for the worker, forever

    quick = Workflow("quick").step("quick", lambda task: None)
    yield hangs, quick
    FOREVER.set()


def test_a_step_that_never_returns_times_out_and_its_slot_goes_on(backend, hangs):
    hangs_workflow, quick = hangs
    stuck = hangs_workflow.submit()
    with running_worker(concurrency=1):
        wait_until(lambda: Task.objects.using(backend).get(id=stuck.id).status == "failed", 20)
        after = quick.submit()  # the only slot is free again: this one runs
        wait_until(lambda: Task.objects.using(backend).get(id=after.id).status == "completed", 10)
        FOREVER.set()  # let the abandoned threads end before the worker stops
    stuck.refresh_from_db()
    assert stuck.status == TaskStatus.FAILED
    assert stuck.attempt == 2  # the retry policy applied to the timeout
    assert stuck.error.startswith("StepTimeout: Step 'stuck' ran longer than its timeout of 0.3s")
    runs = list(stuck.step_runs.order_by("attempt"))
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "failed")]
    assert "The step was still running here" in runs[0].traceback
    assert "FOREVER.wait()" in runs[0].traceback  # where it hung


def test_an_abandoned_step_that_returns_late_writes_nothing(backend, hangs):
    hangs_workflow, _quick = hangs
    stuck = hangs_workflow.submit()
    with running_worker(concurrency=1):
        wait_until(lambda: Task.objects.using(backend).get(id=stuck.id).status == "failed", 20)
        FOREVER.set()  # both abandoned attempts return now, long after their deadline
        wait_until(
            lambda: (
                not any(
                    t.name.startswith("salvador-0") and "." not in t.name
                    for t in threading.enumerate()
                )
            ),
            10,
        )
    stuck.refresh_from_db()
    assert stuck.status == TaskStatus.FAILED
    assert stuck.step_runs.filter(status="completed").count() == 0


def test_a_timed_out_step_hands_its_compensations_to_a_worker(backend, workflow_names):
    FOREVER.clear()
    workflow_names.append("hangs-after-booking")
    undone = threading.Event()
    workflow = (
        Workflow("hangs-after-booking")
        .step("book", lambda task: None, compensate=lambda task: undone.set())
        .step("stuck", lambda task: FOREVER.wait(), timeout=0.3)
    )
    task = workflow.submit()
    try:
        with running_worker(concurrency=1):
            wait_until(lambda: Task.objects.using(backend).get(id=task.id).status == "failed", 20)
            FOREVER.set()
    finally:
        FOREVER.set()
    task.refresh_from_db()
    assert undone.is_set()
    assert task.compensation == "completed"
    assert task.error.startswith("StepTimeout: Step 'stuck' ran longer than its timeout")
    undo = task.step_runs.get(compensation=True)
    assert undo.status == "completed"
