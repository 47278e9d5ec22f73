"""Cancellation in each state: pending at once, running after its current step."""

import threading

import pytest
from django.db.models.functions import Now

from salvador_django import Retry, TaskStatus, Workflow
from salvador_django.exceptions import InvalidTransition
from salvador_django.models import Task
from salvador_django.testing import run_until_idle
from tests.factories import TaskFactory
from tests.support.waiting import running_worker, wait_until

RAN: list[str] = []
IN_STEP = threading.Event()
RELEASE = threading.Event()


@pytest.fixture
def gated(workflow_names):
    """A workflow whose first step waits for RELEASE; tracks the steps that ran."""
    RAN.clear()
    IN_STEP.clear()
    RELEASE.clear()
    workflow_names.append("gated")
    workflow = Workflow("gated")

    @workflow.step("wait", retry=Retry(max_attempts=3, initial_delay=0))
    def wait(task):
        RAN.append("wait")
        IN_STEP.set()
        assert RELEASE.wait(10)
        if task.body.get("fail"):
            raise ConnectionError("flaky")

    workflow.step("after", lambda task: RAN.append("after"))
    workflow.step("last", lambda task: RAN.append("last"))
    yield workflow
    RELEASE.set()


def test_a_pending_task_is_cancelled_at_once_and_never_runs(backend, gated):
    task = gated.submit({})
    task.cancel()
    assert (task.status, task.cancel_requested) == (TaskStatus.CANCELLED, False)
    assert run_until_idle() == 0
    assert RAN == []


def test_a_running_task_stops_after_its_current_step(backend, gated):
    task = gated.submit({})
    with running_worker():
        assert IN_STEP.wait(10)
        task.cancel()
        assert (task.status, task.cancel_requested) == (TaskStatus.RUNNING, True)
        RELEASE.set()
        wait_until(lambda: Task.objects.using(backend).get(id=task.id).status == "cancelled")
    task.refresh_from_db()
    assert RAN == ["wait"]  # the step finished; the next never started
    assert (task.step, task.step_name) == (1, "after")
    assert task.finished_at is not None
    assert list(task.step_runs.values_list("name", "status")) == [("wait", "completed")]


def test_a_running_task_cancelled_during_a_failing_step_is_not_retried(backend, gated):
    task = gated.submit({"fail": True})
    with running_worker():
        assert IN_STEP.wait(10)
        task.cancel()
        RELEASE.set()
        wait_until(lambda: Task.objects.using(backend).get(id=task.id).status == "cancelled")
    task.refresh_from_db()
    assert RAN == ["wait"]
    assert task.error == "ConnectionError: flaky"
    assert list(task.step_runs.values_list("name", "status")) == [("wait", "failed")]


def test_cancelling_a_running_task_twice_is_one_request(backend):
    task = TaskFactory(running=True)
    task.cancel()
    first = task.cancel_requested_at
    task.cancel()
    assert task.cancel_requested_at == first


def test_a_claimed_task_whose_cancel_was_requested_ends_without_running(backend, gated):
    # A worker died after the request; the reaper made the task pending again.
    task = gated.submit({})
    Task.objects.using(backend).filter(id=task.id).update(cancel_requested_at=Now())
    run_until_idle()
    task.refresh_from_db()
    assert task.status == TaskStatus.CANCELLED
    assert RAN == []


def test_the_last_step_completing_wins_over_a_late_cancel(backend, workflow_names):
    workflow_names.append("one-step")
    entered, release = threading.Event(), threading.Event()
    workflow = Workflow("one-step").step("only", lambda task: (entered.set(), release.wait(10)))
    task = workflow.submit()
    with running_worker():
        assert entered.wait(10)
        task.cancel()
        release.set()
        wait_until(lambda: Task.objects.using(backend).get(id=task.id).status != "running")
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED


@pytest.mark.parametrize("trait", ["completed", "cancelled"])
def test_finished_tasks_cannot_be_cancelled(backend, trait):
    task = TaskFactory(**{trait: True})
    with pytest.raises(InvalidTransition, match="Cannot cancel"):
        task.cancel()


def test_requeue_clears_a_cancel_request(backend):
    task = TaskFactory(cancelled=True, cancel_requested_at=None)
    Task.objects.using(backend).filter(id=task.id).update(cancel_requested_at=Now())
    task.requeue()
    assert task.cancel_requested_at is None
