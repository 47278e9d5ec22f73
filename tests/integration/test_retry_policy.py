"""Retry policy: defaults per workflow and in settings, PermanentError, attempt timing."""

from salvador_django import Retry, TaskStatus, Workflow
from salvador_django.exceptions import PermanentError
from tests.support.waiting import run_until_finished


class CardDeclined(PermanentError):
    pass


def failing_workflow(name, workflow_names, exc, **workflow_kwargs):
    workflow_names.append(name)
    workflow = Workflow(name, **workflow_kwargs)
    workflow.step("always-fails", lambda task: (_ for _ in ()).throw(exc))
    return workflow


def test_a_permanent_error_fails_the_task_at_once_despite_retries_left(backend, workflow_names):
    workflow_names.append("charge")
    workflow = Workflow("charge")

    @workflow.step("charge", retry=Retry(max_attempts=5, initial_delay=0))
    def charge(task):
        raise CardDeclined("card declined")

    task = run_until_finished(workflow.submit())
    assert (task.status, task.attempt, task.error) == (
        TaskStatus.FAILED,
        1,
        "CardDeclined: card declined",
    )
    assert task.step_runs.count() == 1


def test_the_workflow_retry_is_the_default_of_its_steps(backend, workflow_names):
    workflow = failing_workflow(
        "wf-default",
        workflow_names,
        ConnectionError("down"),
        retry=Retry(max_attempts=3, initial_delay=0, jitter=False),
    )
    task = run_until_finished(workflow.submit())
    assert (task.status, task.attempt) == (TaskStatus.FAILED, 3)


def test_a_step_retry_wins_over_the_workflow_retry(backend, workflow_names):
    workflow_names.append("step-wins")
    workflow = Workflow("step-wins", retry=Retry(max_attempts=5, initial_delay=0))
    workflow.step(
        "once",
        lambda task: (_ for _ in ()).throw(ConnectionError("down")),
        retry=Retry(max_attempts=2, initial_delay=0),
    )
    task = run_until_finished(workflow.submit())
    assert task.attempt == 2


def test_the_global_retry_setting_applies_when_neither_step_nor_workflow_has_one(
    backend, workflow_names, settings
):
    settings.SALVADOR = {
        **settings.SALVADOR,
        "RETRY": Retry(max_attempts=4, initial_delay=0, retry_on=(ConnectionError,)),
    }
    retried = failing_workflow("global-retried", workflow_names, ConnectionError("down"))
    not_retried = failing_workflow("global-filtered", workflow_names, KeyError("bad"))
    assert run_until_finished(retried.submit()).attempt == 4
    assert run_until_finished(not_retried.submit()).attempt == 1  # outside retry_on


def test_attempts_start_no_earlier_than_their_backoff_and_record_when(backend, workflow_names):
    workflow = failing_workflow(
        "backoff",
        workflow_names,
        ConnectionError("down"),
        retry=Retry(max_attempts=3, initial_delay=0.2, backoff=2, jitter=False),
    )
    task = run_until_finished(workflow.submit())
    runs = list(task.step_runs.order_by("attempt"))
    assert [r.attempt for r in runs] == [1, 2, 3]
    assert runs[2].next_attempt_at is None  # the last one was not retried
    # What an attempt records as its next one's time is the time the queue waited for.
    assert runs[1].next_attempt_at == task.run_after
    for previous, following, delay in ((runs[0], runs[1], 0.2), (runs[1], runs[2], 0.4)):
        assert previous.next_attempt_at is not None
        scheduled = (previous.next_attempt_at - previous.finished_at).total_seconds()
        assert abs(scheduled - delay) < 0.05
        assert following.started_at >= previous.next_attempt_at
