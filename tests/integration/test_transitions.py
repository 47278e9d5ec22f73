from salvador_django import TaskStatus
from salvador_django.exceptions import InvalidTransition
from salvador_django.models import Task
from salvador_django.testing import run_until_idle
from tests.factories import StepRunFactory, TaskFactory
from tests.support.waiting import run_in_threads


def test_requeue_resumes_a_failed_task_at_the_broken_step(backend):
    task = TaskFactory(failed=True, state={"first": 1})
    task.requeue()
    assert task.status == TaskStatus.PENDING
    assert (task.step, task.step_name, task.attempt, task.error) == (1, "second", 0, "")
    assert task.state == {"first": 1}
    assert task.finished_at is None
    assert Task.objects.using(backend).due().filter(id=task.id).exists()


def test_requeue_from_start_resets_progress_and_state(backend):
    task = TaskFactory(completed=True, state={"first": 1})
    task.requeue(from_start=True)
    assert (task.status, task.step, task.step_name, task.state) == (
        TaskStatus.PENDING,
        0,
        "first",
        {},
    )


def test_cancel_pending_and_failed_tasks(backend):
    pending, failed = TaskFactory(), TaskFactory(failed=True)
    pending.cancel()
    failed.cancel()
    assert pending.status == failed.status == TaskStatus.CANCELLED
    assert pending.finished_at is not None
    assert run_until_idle() == 0  # cancelled tasks are never claimed


def test_concurrent_requeues_of_one_task_succeed_exactly_once(backend):
    task = TaskFactory(failed=True)
    StepRunFactory(task=task)

    def requeue(_: int) -> str:
        copy = Task.objects.using(backend).get(id=task.id)
        try:
            copy.requeue()
        except InvalidTransition:
            return "refused"
        return "requeued"

    assert sorted(run_in_threads(requeue, 4)) == ["refused"] * 3 + ["requeued"]
