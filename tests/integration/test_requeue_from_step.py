"""Requeue from a chosen step (DBOS calls it forking), and where a task broke."""

import pytest

from salvador_django import TaskStatus, Workflow, submit
from salvador_django.exceptions import InvalidTransition
from salvador_django.models import Task
from salvador_django.testing import run_until_idle
from tests.factories import TaskFactory

RUNS: list[str] = []


@pytest.fixture
def forked(workflow_names):
    """A workflow whose steps build up task.state; ``body["fail"]`` names a step to fail."""
    RUNS.clear()
    workflow = Workflow("forked")
    workflow_names.append(workflow.name)

    def step(name):
        def run(task):
            RUNS.append(name)
            if name in (task.body or {}).get("fail", []):
                raise ValueError(f"{name} failed on purpose")
            task.state[name] = len(task.state) + 1
            return name.upper()

        return run

    for name in ("a", "b", "c"):
        workflow.step(name, step(name))
    return workflow


def test_a_failed_task_runs_again_from_the_chosen_step_with_the_state_before_it(backend, forked):
    task = submit("forked", {"fail": ["c"]})
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.failed_step, task.state) == ("failed", "c", {"a": 1, "b": 2})

    Task.objects.using(backend).filter(id=task.id).update(body={})
    task.refresh_from_db()
    RUNS.clear()
    task.requeue(from_step="b")
    assert (task.status, task.step, task.step_name) == (TaskStatus.PENDING, 1, "b")
    assert task.state == {"a": 1}  # as it was checkpointed after "a", not the failure's
    assert (task.failed_step, task.error, task.attempt) == ("", "", 0)
    assert Task.objects.using(backend).due().filter(id=task.id).exists()

    run_until_idle()
    task.refresh_from_db()
    assert RUNS == ["b", "c"]  # "a" is not run again
    assert (task.status, task.state) == (TaskStatus.COMPLETED, {"a": 1, "b": 2, "c": 3})


def test_a_completed_task_runs_again_from_its_last_step(backend, forked):
    task = submit("forked")
    run_until_idle()
    RUNS.clear()
    task.refresh_from_db()
    task.requeue(from_step="c")
    assert task.state == {"a": 1, "b": 2}
    run_until_idle()
    task.refresh_from_db()
    assert RUNS == ["c"]
    assert task.status == TaskStatus.COMPLETED


def test_from_the_first_step_the_state_is_empty(backend, forked):
    task = submit("forked", {"fail": ["b"]})
    run_until_idle()
    task.refresh_from_db()
    task.requeue(from_step="a")
    assert (task.step, task.step_name, task.state) == (0, "a", {})


def test_the_step_runs_record_the_state_after_each_completed_step(backend, forked):
    task = submit("forked", {"fail": ["c"]})
    run_until_idle()
    runs = list(task.step_runs.order_by("id").values_list("name", "status", "state"))
    assert runs == [
        ("a", "completed", {"a": 1}),
        ("b", "completed", {"a": 1, "b": 2}),
        ("c", "failed", None),
    ]


@pytest.mark.parametrize("trait", ["running", "pending"])
def test_refused_on_an_unfinished_task(backend, forked, trait):
    task = TaskFactory(workflow="forked", **({trait: True} if trait == "running" else {}))
    with pytest.raises(InvalidTransition, match=f"it is {trait}"):
        task.requeue(from_step="a")
    assert Task.objects.using(backend).get(id=task.id).status == trait


def test_an_unknown_step_is_a_value_error_naming_the_steps(backend, forked):
    task = TaskFactory(workflow="forked", failed=True)
    with pytest.raises(ValueError, match=r"no step 'z' \(steps: a, b, c\)"):
        task.requeue(from_step="z")
    assert Task.objects.using(backend).get(id=task.id).status == TaskStatus.FAILED


def test_a_step_the_task_never_reached_is_refused(backend, forked):
    task = submit("forked", {"fail": ["a"]})
    run_until_idle()
    task.refresh_from_db()
    with pytest.raises(ValueError, match="has not reached step 'c': it can run again from a"):
        task.requeue(from_step="c")


def test_after_its_compensation_a_task_runs_again_only_from_its_first_step(backend, forked):
    # The compensations undid the completed steps: what they did must be done again.
    task = TaskFactory(workflow="forked", failed=True, step=0, step_name="", failed_step="c")
    with pytest.raises(ValueError, match=r"it can run again from a\.$"):
        task.requeue(from_step="b")


def test_without_a_recorded_state_it_says_to_requeue_from_the_start(backend, forked):
    task = TaskFactory(workflow="forked", completed=True)  # no step runs recorded
    with pytest.raises(ValueError, match="no state was recorded after 'b'"):
        task.requeue(from_step="c")


def test_from_start_and_from_step_together_are_refused(backend, forked):
    task = TaskFactory(workflow="forked", failed=True)
    with pytest.raises(ValueError, match="not both"):
        task.requeue(from_start=True, from_step="a")


def test_failed_step_names_where_it_broke_and_a_requeue_clears_it(backend, forked):
    task = submit("forked", {"fail": ["b"]})
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.step_name, task.failed_step) == ("failed", "b", "b")
    task.requeue()
    assert task.failed_step == ""
