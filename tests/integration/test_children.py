"""Child tasks, fan-out and fan-in, results (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from salvador_django import TaskStatus, get_task, send_signal, submit
from salvador_django.exceptions import ChildFailed, NoResult, NotInStep
from salvador_django.models import Task, Wait
from salvador_django.status import WaitKind, WaitOutcome
from salvador_django.testing import advance_timers, run_until_idle
from tests.testapp.models import Event as StepStarted


def runs(task: Task, step: str) -> int:
    return StepStarted.objects.using(task._state.db).filter(task_id=task.id, step=step).count()


def reloaded(task: Task) -> Task:
    task.refresh_from_db()
    return task


def test_a_task_s_result_is_its_last_step_s_return_value(backend):
    task = submit("square", {"n": 7})
    with pytest.raises(NoResult, match="pending"):
        _ = get_task(task.id).result
    run_until_idle()
    assert get_task(task.id).result == 49
    failed = submit("square", {"n": 2, "fail": True})
    run_until_idle()
    with pytest.raises(NoResult, match=r"failed at step 'square'.*no square for 2"):
        _ = get_task(failed.id).result


def test_a_parent_maps_over_children_and_resumes_with_their_results_in_order(backend):
    parent = submit("fan-out", {"count": 5})
    run_until_idle()
    parent = reloaded(parent)
    assert parent.status == TaskStatus.COMPLETED, parent.error
    assert parent.state["squares"] == [0, 1, 4, 9, 16]
    assert parent.result == 30
    children = list(parent.children.order_by("child_key"))
    assert [c.child_key for c in children] == ["#1", "#2", "#3", "#4", "#5"]
    assert {c.parent_step for c in children} == {"spread"}
    assert all(c.status == TaskStatus.COMPLETED and c.priority == parent.priority for c in children)
    assert runs(parent, "spread") == 2  # ran, waited, ran again once: no poll
    assert sum(runs(c, "square") for c in children) == 5  # each child started once
    wait = Wait.objects.using(backend).get(task=parent)
    assert (wait.kind, wait.outcome) == (WaitKind.CHILDREN, WaitOutcome.FINISHED)


def test_the_last_child_to_finish_makes_its_parent_due(backend):
    parent = submit("waiting-children", {"count": 3})
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.status, parent.children_left) == (TaskStatus.WAITING, 3)
    children = list(parent.children.order_by("child_key"))
    assert all(c.status == TaskStatus.WAITING and c.awaited for c in children)
    for number, child in enumerate(children, start=1):
        send_signal(child.id, "go", number)
        run_until_idle(["waits-for-go"])
        parent = reloaded(parent)
        if number < 3:
            assert (parent.status, parent.children_left) == (TaskStatus.WAITING, 3 - number)
    assert (parent.status, parent.children_left) == (TaskStatus.PENDING, None)
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.status, parent.result) == (TaskStatus.COMPLETED, [1, 2, 3])


def test_a_failed_child_raises_child_failed_in_the_parent(backend):
    parent = submit("fan-out", {"count": 3, "fail": [1]})
    run_until_idle()
    parent = reloaded(parent)
    assert parent.status == TaskStatus.FAILED
    assert "ChildFailed" in parent.error
    assert "no square for 1" in parent.error
    assert parent.attempt == 1  # permanent: not retried


def test_return_exceptions_gives_the_failure_as_the_child_s_entry(backend):
    parent = submit("keyed-children", {})
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.status, parent.result) == (TaskStatus.COMPLETED, [1, "ChildFailed", 9])
    keys = sorted(parent.children.values_list("child_key", flat=True))
    assert keys == ["item-1", "item-2", "item-3"]


def test_a_requeued_failed_child_is_awaited_again_by_its_still_waiting_parent(backend):
    parent = submit("waiting-children", {"count": 2})
    run_until_idle()
    first, second = reloaded(parent).children.order_by("child_key")
    first.cancel()
    parent = reloaded(parent)
    assert (parent.status, parent.children_left) == (TaskStatus.WAITING, 1)
    first.requeue()
    assert reloaded(parent).children_left == 2
    run_until_idle()
    send_signal(first.id, "go", "a")
    send_signal(second.id, "go", "b")
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.status, parent.result) == (TaskStatus.COMPLETED, ["a", "b"])


def test_cancelling_a_parent_cancels_its_waiting_children_and_theirs(backend):
    grandparent = submit("nested-children", {})
    run_until_idle()
    (parent,) = reloaded(grandparent).children.all()
    grandchildren = list(parent.children.all())
    assert len(grandchildren) == 2
    assert all(t.status == TaskStatus.WAITING for t in [parent, *grandchildren])
    grandparent.cancel()
    assert reloaded(grandparent).status == TaskStatus.CANCELLED
    assert reloaded(parent).status == TaskStatus.CANCELLED
    assert {reloaded(t).status for t in grandchildren} == {TaskStatus.CANCELLED}


def test_a_parent_that_ends_cancels_its_attached_children_but_not_detached_ones(backend):
    parent = submit("leaves-children", {})
    run_until_idle()
    assert reloaded(parent).status == TaskStatus.COMPLETED
    children = {c.child_key: c for c in reloaded(parent).children.all()}
    assert children["attached"].status == TaskStatus.CANCELLED
    assert children["detached"].status == TaskStatus.WAITING
    assert children["detached"].detached


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("unknown workflow", "no-such-workflow"),
        ("body not json", "not JSON"),
        ("positional key", "may not start with '#'"),
        ("key twice", "used twice"),
        ("not a child", "children of this task"),
    ],
)
def test_bad_input_to_start_child_fails_the_step_and_creates_nothing(backend, mode, message):
    task = submit("bad-child", {"mode": mode})
    run_until_idle()
    task = reloaded(task)
    assert task.status == TaskStatus.FAILED
    assert message in task.error
    assert "InvalidChild" in task.error
    assert task.attempt == 1  # not retried
    assert not Task.objects.using(backend).filter(parent_id=task.id).exists()


def test_start_child_outside_a_step_is_refused(backend):
    task = submit("square", {"n": 1})
    with pytest.raises(NotInStep):
        task.start_child("square", {"n": 2})
    with pytest.raises(NotInStep):
        task.wait_for_children()
    assert Task.objects.using(backend).count() == 1


def test_a_parent_cancelled_while_its_children_fail_is_cancelled(backend):
    parent = submit("waiting-children", {"count": 2})
    run_until_idle()
    children = list(reloaded(parent).children.all())
    for child in children:
        child.cancel()
    parent = reloaded(parent)
    assert parent.status == TaskStatus.PENDING  # woken: every awaited child finished
    run_until_idle()
    parent = reloaded(parent)
    assert parent.status == TaskStatus.FAILED
    assert "was cancelled" in parent.error


def test_child_failed_names_the_child(backend):
    parent = submit("fan-out", {"count": 2, "fail": [0]})
    run_until_idle()
    child = reloaded(parent).children.get(child_key="#1")
    assert str(child.id) in reloaded(parent).error
    assert ChildFailed.__name__ in reloaded(parent).error


def test_a_wait_for_children_times_out_and_the_children_are_cancelled(backend):
    parent = submit("waiting-children", {"count": 2, "timeout": 60})
    run_until_idle()
    parent = reloaded(parent)
    assert parent.status == TaskStatus.WAITING
    assert parent.wake_at is not None
    advance_timers(61)
    run_until_idle()
    parent = reloaded(parent)
    assert parent.status == TaskStatus.FAILED
    assert "WaitTimeout" in parent.error
    assert "did not all finish" in parent.error
    statuses = set(parent.children.values_list("status", flat=True))
    assert statuses == {TaskStatus.CANCELLED}  # a parent that fails leaves none running


def test_a_paused_parent_resumes_after_its_children_finished(backend):
    parent = submit("waiting-children", {"count": 1})
    run_until_idle()
    reloaded(parent).pause()
    (child,) = reloaded(parent).children.all()
    send_signal(child.id, "go", "x")
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.status, parent.children_left) == (TaskStatus.PAUSED, 0)
    parent.resume()
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.status, parent.result) == (TaskStatus.COMPLETED, ["x"])


def test_a_child_s_priority_defaults_to_its_parent_s(backend):
    parent = submit("fan-out", {"count": 2}, priority=7)
    run_until_idle()
    assert set(reloaded(parent).children.values_list("priority", flat=True)) == {7}


def test_a_parent_waits_only_for_the_children_it_names(backend):
    parent = submit("waits-for-first", {})
    run_until_idle()
    first, *others = reloaded(parent).children.order_by("child_key")
    assert reloaded(parent).children_left == 1
    assert [c.awaited for c in (first, *others)] == [True, False, False]
    send_signal(first.id, "go", "a")
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.status, parent.result) == (TaskStatus.COMPLETED, ["a"])
    assert {reloaded(c).status for c in others} == {TaskStatus.CANCELLED}  # it ended


def test_a_child_an_earlier_wait_awaited_no_longer_counts(backend):
    parent = submit("two-rounds", {})
    run_until_idle()
    a = reloaded(parent).children.get(child_key="a")
    send_signal(a.id, "go", 1)
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.step_name, parent.status, parent.children_left) == (
        "second", TaskStatus.WAITING, 1,
    )  # fmt: skip
    a.requeue(from_start=True)  # runs again, waiting for "go": not what "second" awaits
    parent = reloaded(parent)
    assert (parent.children_left, reloaded(a).awaited) == (1, False)
    b = parent.children.get(child_key="b")
    send_signal(b.id, "go", 2)
    run_until_idle(["waits-for-go"])
    assert reloaded(parent).status == TaskStatus.PENDING
    run_until_idle()
    parent = reloaded(parent)
    assert (parent.status, parent.result) == (TaskStatus.COMPLETED, [2])
    assert reloaded(a).status == TaskStatus.CANCELLED


@pytest.mark.only_backend("postgres", "mariadb")
def test_cancelling_a_parent_while_its_children_end_deadlocks_nothing(backend):
    parent = submit("waiting-children", {"count": 20})
    run_until_idle()
    children = list(reloaded(parent).children.all())
    for child in children:
        send_signal(child.id, "go", 1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            run_until_idle(["waits-for-go"])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    reloaded(parent).cancel()
    for thread in threads:
        thread.join()
    assert errors == []
    assert reloaded(parent).status == TaskStatus.CANCELLED
    statuses = set(
        Task.objects.using(backend).filter(parent_id=parent.id).values_list("status", flat=True)
    )
    assert statuses <= {TaskStatus.COMPLETED, TaskStatus.CANCELLED}
