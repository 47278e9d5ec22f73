"""Saga compensation: completed steps are undone in reverse order, durably."""

import pytest
from django.db.models.functions import Now

from salvador_django import Retry, TaskStatus, Workflow, submit
from salvador_django.exceptions import InvalidTransition
from salvador_django.models import Task
from salvador_django.status import CompensationStatus
from salvador_django.testing import run_until_idle
from tests.factories import TaskFactory
from tests.support.tasks import make_due
from tests.testapp.models import Event


def events(alias, task):
    return list(
        Event.objects.using(alias)
        .filter(task_id=task.id)
        .order_by("id")
        .values_list("step", flat=True)
    )


def test_compensations_run_in_reverse_order_after_a_terminal_failure(backend):
    task = submit("saga", {"fail": ["ship"]})
    run_until_idle()
    task.refresh_from_db()
    assert events(backend, task) == [
        "reserve", "charge", "notify", "ship", "undo-charge", "undo-reserve"
    ]  # fmt: skip
    assert (task.status, task.compensation) == (TaskStatus.FAILED, CompensationStatus.COMPLETED)
    assert task.error == "ValueError: ship failed on purpose"  # why it stopped, kept
    assert (task.step, task.step_name) == (0, "")  # nothing done remains
    assert task.failed_step == "ship"  # where it broke stays known after compensation
    runs = list(task.step_runs.order_by("id").values_list("name", "status", "compensation"))
    assert runs == [
        ("reserve", "completed", False),
        ("charge", "completed", False),
        ("notify", "completed", False),
        ("ship", "failed", False),
        ("charge", "completed", True),
        ("reserve", "completed", True),
    ]


def test_a_task_failing_before_any_compensable_step_just_fails(backend):
    task = submit("saga", {"fail": ["reserve"]})
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.compensation) == (TaskStatus.FAILED, CompensationStatus.NONE)
    assert events(backend, task) == ["reserve"]


def test_a_compensation_that_fails_for_good_stops_and_says_which(backend):
    task = submit("saga", {"fail": ["ship", "undo-charge"]})
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.compensation) == (TaskStatus.FAILED, CompensationStatus.FAILED)
    assert task.error == (
        "Compensation of step 'charge' failed: ValueError: undo-charge failed on purpose "
        "(the task had stopped with: ValueError: ship failed on purpose)"
    )
    assert events(backend, task)[-1] == "undo-charge"  # undo-reserve did not run
    assert (task.step, task.step_name) == (2, "charge")  # two steps still to undo
    assert task.failed_step == "ship"
    failed = task.step_runs.get(compensation=True)
    assert (failed.name, failed.status) == ("charge", "failed")

    # The operator fixes the cause and requeues: compensation resumes, forward never.
    Task.objects.using(backend).filter(id=task.id).update(body={"fail": ["ship"]})
    task.refresh_from_db()
    task.requeue()
    assert task.compensation == CompensationStatus.RUNNING
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.compensation) == (TaskStatus.FAILED, CompensationStatus.COMPLETED)
    assert events(backend, task)[-3:] == ["undo-charge", "undo-charge", "undo-reserve"]
    assert task.failed_step == "ship"  # a requeue that resumes the compensation keeps it
    assert events(backend, task).count("ship") == 1


def test_compensations_are_retried_by_their_steps_retry_policy(backend, workflow_names):
    workflow_names.append("retried-undo")
    undo_attempts = []

    def undo(task):
        undo_attempts.append(task.attempt)
        if task.attempt < 3:
            raise ConnectionError("refund service down")

    workflow = (
        Workflow("retried-undo")
        .step("pay", lambda task: None, compensate=undo, retry=Retry(3, initial_delay=0))
        .step("boom", lambda task: 1 / 0)
    )
    task = workflow.submit()
    for _ in range(10):
        run_until_idle()
    task.refresh_from_db()
    assert undo_attempts == [1, 2, 3]
    assert (task.status, task.compensation) == (TaskStatus.FAILED, CompensationStatus.COMPLETED)
    runs = list(
        task.step_runs.filter(compensation=True).order_by("id").values_list("attempt", "status")
    )
    assert runs == [(1, "failed"), (2, "failed"), (3, "completed")]
    assert task.step_runs.get(compensation=True, attempt=1).next_attempt_at is not None


def test_a_cancelled_task_is_compensated_and_ends_cancelled(backend):
    task = TaskFactory(
        workflow="saga", step=2, step_name="notify", state={"reserve": 1, "charge": 1}
    )
    Task.objects.using(backend).filter(id=task.id).update(cancel_requested_at=Now())
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.compensation) == (
        TaskStatus.CANCELLED,
        CompensationStatus.COMPLETED,
    )
    assert events(backend, task) == ["undo-charge", "undo-reserve"]


def test_restart_from_the_first_step_after_compensation_runs_forward(backend):
    task = submit("saga", {"fail": ["ship"]})
    run_until_idle()
    Task.objects.using(backend).filter(id=task.id).update(body={})
    task.refresh_from_db()
    task.requeue(from_start=True)
    assert task.compensation == CompensationStatus.NONE
    run_until_idle()
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert events(backend, task)[-4:] == ["reserve", "charge", "notify", "ship"]


def test_compensations_see_the_last_checkpoint_not_the_failed_attempt(backend, workflow_names):
    workflow_names.append("dirty-state")
    seen = []

    def breaks(task):
        task.state["half-done"] = True  # never checkpointed: the attempt failed
        raise ValueError("broke")

    workflow = (
        Workflow("dirty-state")
        .step(
            "book",
            lambda task: task.state.update(booked=1),
            compensate=lambda t: seen.append(dict(t.state)),
        )
        .step("breaks", breaks)
    )
    workflow.submit()
    run_until_idle()
    assert seen == [{"booked": 1}]


def test_a_task_compensating_after_a_failure_cannot_be_cancelled(backend, workflow_names):
    workflow_names.append("slow-undo")
    calls = []

    def undo(task):
        calls.append(task.attempt)
        if task.attempt == 1:
            raise ConnectionError("down")

    workflow = (
        Workflow("slow-undo")
        .step(
            "pay",
            lambda task: None,
            compensate=undo,
            retry=Retry(2, initial_delay=0.3, jitter=False),
        )
        .step("boom", lambda task: 1 / 0)
    )
    task = workflow.submit()
    run_until_idle()  # boom fails; the compensation's first attempt fails: a retry waits
    task.refresh_from_db()
    assert (task.status, task.compensation) == (TaskStatus.PENDING, CompensationStatus.RUNNING)
    with pytest.raises(InvalidTransition, match="its compensation is running"):
        task.cancel()
    make_due(task, backend)  # the compensation's retry is due
    run_until_idle()
    task.refresh_from_db()
    assert calls == [1, 2]
    assert (task.status, task.compensation) == (TaskStatus.FAILED, CompensationStatus.COMPLETED)
    assert task.error == "ZeroDivisionError: division by zero"


def test_a_requeued_failed_compensation_keeps_the_original_error(backend):
    task = submit("saga", {"fail": ["ship", "undo-charge"]})
    run_until_idle()
    Task.objects.using(backend).filter(id=task.id).update(body={"fail": ["ship"]})
    task.refresh_from_db()
    task.requeue()
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.compensation) == (TaskStatus.FAILED, CompensationStatus.COMPLETED)
    assert task.error == "ValueError: ship failed on purpose"
