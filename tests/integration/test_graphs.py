"""Graph workflows: parallel, conditional and joining steps (SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
import time

import pytest
from django.db import connections

from salvador_django import TaskStatus, get_task, send_signal, submit
from salvador_django.models import StepRun, Task, Wait
from salvador_django.status import StepRunStatus, WaitOutcome
from salvador_django.testing import run_until_idle
from tests.support.servers import drop_connections
from tests.testapp.models import Event

DIAMOND = ("a", "b1", "b2", "b3", "b4", "join")


def runs(task: Task, step: str) -> int:
    return Event.objects.using(task._state.db).filter(task_id=task.id, step=step).count()


def run_retries(task: Task, rounds: int = 5) -> Task:
    """Run the task, making its retries due at once, ``rounds`` times."""
    for _ in range(rounds):
        run_until_idle()
        pending = Task.objects.using(task._state.db).filter(id=task.id, status="pending")
        pending.update(run_after="2000-01-01T00:00:00Z")
    return get_task(task.id)


def order(task: Task) -> list[str]:
    events = Event.objects.using(task._state.db).filter(task_id=task.id).order_by("started")
    return list(events.values_list("step", flat=True))


@pytest.fixture
def parallel(monkeypatch):
    """``run_until_idle`` runs up to four steps of a graph task at the same time."""
    monkeypatch.setattr(
        "tests.integration.test_graphs.run_until_idle",
        functools.partial(run_until_idle, parallel_steps=4),
    )


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_diamond_runs_every_step_once_and_the_join_sees_every_branch(backend, parallel):
    task = submit("diamond", {"sleep": {"b1": 0.2, "b2": 0.2, "b3": 0.2, "b4": 0.2}})
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    assert task.result == {name: {"step": name} for name in ("b1", "b2", "b3", "b4")}
    assert all(runs(task, name) == 1 for name in DIAMOND)
    events = {e.step: e for e in Event.objects.using(backend).filter(task_id=task.id)}
    branches = [events[name] for name in ("b1", "b2", "b3", "b4")]
    assert max(e.started for e in branches) < min(e.finished for e in branches)  # overlapped
    assert events["a"].finished <= min(e.started for e in branches)
    assert events["join"].started >= max(e.finished for e in branches)
    assert task.progress["done"][0] == "a"
    assert task.progress["done"][-1] == "join"
    assert task.step == 6
    completed = StepRun.objects.using(backend).filter(task=task, status=StepRunStatus.COMPLETED)
    assert completed.count() == 6  # one checkpoint per step


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_parallel_state_writes_merge_key_by_key_and_the_later_checkpoint_wins(backend, parallel):
    task = submit("merges")
    Task.objects.using(backend).filter(id=task.id).update(state={"drop": True, "kept": 0})
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    recorded = {"w-1": 1, "w-2": 1, "w-one": 1, "w-two": 1}  # each step's record() writes one
    assert task.state == {"kept": 0, "first": 1, "second": 2, "same": "two", **recorded}
    assert task.result == task.state


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_false_condition_skips_a_step_and_after_any_runs_if_any_ran(backend):
    plain = submit("conditional", {})
    insured = submit("conditional", {"insure": True})
    run_until_idle()
    plain, insured = get_task(plain.id), get_task(insured.id)
    assert plain.status == insured.status == TaskStatus.COMPLETED
    assert plain.progress["skipped"] == ["insurance", "upgrade", "notify"]
    assert plain.result == ["quote"]
    assert insured.progress["skipped"] == ["upgrade"]
    assert insured.result == ["insurance", "notify", "quote"]
    assert order(insured) == ["quote", "insurance", "notify"]
    skipped = StepRun.objects.using(backend).filter(task=plain, status=StepRunStatus.SKIPPED)
    assert sorted(skipped.values_list("name", flat=True)) == ["insurance", "notify", "upgrade"]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_condition_that_raises_fails_the_step_through_its_retry_policy(backend):
    task = run_retries(submit("bad-condition"))
    assert task.status == TaskStatus.FAILED
    assert task.failed_step == "guarded"
    assert "condition broke" in task.error
    failed = StepRun.objects.using(backend).filter(task=task, status=StepRunStatus.FAILED)
    assert list(failed.values_list("name", "attempt")) == [("guarded", 1), ("guarded", 2)]
    assert runs(task, "guarded") == 0


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_failed_branch_lets_running_ones_finish_then_compensates_in_reverse(backend, parallel):
    task = submit("branches-fail", {"fail": ["car"], "sleep": {"flight": 0.3, "hotel": 0.1}})
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.FAILED
    assert task.failed_step == "car"
    assert "Step 'car' failed: ValueError: car failed on purpose" in task.error
    assert runs(task, "charge") == 0
    assert runs(task, "flight") == runs(task, "hotel") == 1  # finished, checkpointed
    undo = [step for step in order(task) if step.startswith("undo-")]
    assert undo == ["undo-flight", "undo-hotel", "undo-start"]  # reverse order of completion
    assert task.compensation == "completed"


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_requeue_runs_only_the_failed_and_never_started_steps(backend, parallel):
    task = submit("diamond", {"fail": ["b3"]})
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.FAILED
    assert set(task.progress["done"]) == {"a", "b1", "b2", "b4"}
    Task.objects.using(backend).filter(id=task.id).update(body={})
    task.requeue()
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    assert [runs(task, name) for name in DIAMOND] == [1, 1, 1, 2, 1, 1]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_requeue_from_a_step_runs_it_and_what_follows_again(backend, parallel):
    task = submit("diamond")
    run_until_idle()
    get_task(task.id).requeue(from_step="b2")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED
    assert [runs(task, name) for name in DIAMOND] == [1, 1, 2, 1, 1, 2]
    get_task(task.id).requeue(from_start=True)
    run_until_idle()
    assert runs(task, "a") == 2
    assert runs(task, "join") == 3


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_failed_attempt_of_a_branch_is_retried_on_its_own(backend, parallel):
    task = run_retries(submit("retried-branch"))
    assert task.status == TaskStatus.COMPLETED, task.error
    assert [runs(task, name) for name in ("root", "flaky", "steady", "end")] == [1, 2, 1, 1]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_task_waits_only_when_every_running_branch_waits(backend, parallel):
    task = submit("branch-waits")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.WAITING
    assert runs(task, "quick") == 1  # it ran while the others waited
    assert task.waiting_for == "left"  # the first in definition order; "right" waits too
    send_signal(task.id, "right", "R")  # wakes it: a waiting branch's signal
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.WAITING
    assert "right" in task.progress["done"]
    assert runs(task, "right") == 2  # ran, waited, ran again on its signal
    send_signal(task.id, "left", "L")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    assert task.result == ["L", "R"]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_parallel_step_maps_over_children(backend, parallel):
    task = submit("branch-children")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    assert task.result == 0 + 1 + 4
    assert runs(task, "other") == 1


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_cancel_while_branches_run_takes_effect_once_they_checkpoint(backend, parallel):
    task = submit("cancels-itself")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.CANCELLED
    assert [runs(task, name) for name in ("root", "slow", "canceller", "end")] == [1, 1, 1, 0]
    assert set(task.progress["done"]) == {"root", "slow", "canceller"}


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_pause_while_branches_run_takes_effect_once_they_checkpoint(backend, parallel):
    task = submit("pauses-itself")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.PAUSED
    assert [runs(task, name) for name in ("root", "slow", "pauser", "end")] == [1, 1, 1, 0]
    task.resume()
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED
    assert [runs(task, name) for name in ("root", "slow", "pauser", "end")] == [1, 1, 1, 1]


def _evolving(
    name: str, steps: dict[str, list[str]], workflow_names: list[str], *, gate: bool = True
) -> None:
    """(Re)define workflow ``name``: a gate that waits for "go", then ``steps`` by ``after``."""
    from salvador_django import Workflow
    from salvador_django.definitions import registry
    from tests.testapp.workflows import record

    registry.unregister(name)
    if name not in workflow_names:
        workflow_names.append(name)
    workflow = Workflow(name)
    if gate:
        workflow.step("gate", lambda task: task.wait_for("go"), after=[])
    for step, after in steps.items():
        workflow.step(step, record(step), after=after)


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_deploy_that_adds_a_step_after_a_completed_one_runs_it(backend, workflow_names):
    _evolving("g-evolving", {"left": [], "right": ["gate"]}, workflow_names)
    task = submit("g-evolving")
    run_until_idle()
    assert get_task(task.id).status == TaskStatus.WAITING
    assert runs(task, "left") == 1
    _evolving("g-evolving", {"left": [], "right": ["gate"], "audit": ["left"]}, workflow_names)
    send_signal(task.id, "go")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    assert [runs(task, name) for name in ("left", "right", "audit")] == [1, 1, 1]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_deploy_that_removes_the_pending_step_fails_the_task_clearly(backend, workflow_names):
    _evolving("g-shrinking", {"left": [], "right": ["gate"]}, workflow_names)
    task = submit("g-shrinking")
    run_until_idle()
    task = get_task(task.id)
    assert (task.status, task.step_name) == (TaskStatus.WAITING, "gate")
    _evolving("g-shrinking", {"left": [], "right": []}, workflow_names, gate=False)
    send_signal(task.id, "go")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.FAILED
    assert "StepNotFound" in task.error
    assert "'gate', which workflow 'g-shrinking' no longer has" in task.error


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_parallel_step_that_outlives_its_timeout_fails_while_its_sibling_completes(
    backend, parallel
):
    task = submit("hangs-in-branch")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.FAILED
    assert task.failed_step == "hangs"
    assert "ran longer than its timeout of 0.3s and was abandoned" in task.error
    assert set(task.progress["done"]) == {"root", "quick"}  # not "hangs": its end is not written
    assert runs(task, "end") == 0


@pytest.mark.django_db(databases="__all__")
def test_run_until_idle_runs_a_graph_inside_the_test_s_transaction(backend):
    task = submit("diamond")
    assert run_until_idle() == 1
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    assert order(task) == list(DIAMOND)  # one at a time, in definition order


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_signal_a_waiting_branch_got_while_the_task_began_to_wait_wakes_it(backend):
    task = submit("signals-sibling")
    run_until_idle()
    task = get_task(task.id)
    assert (task.status, task.waiting_for) == (TaskStatus.WAITING, "left")
    assert "right" in task.progress["done"]  # woken at once by the signal it got, ran on
    assert task.outputs["right"] == "from-left"
    assert runs(task, "right") == 2
    waits = Wait.objects.using(backend).filter(task_id=task.id, step_name="right")
    assert list(waits.values_list("outcome", flat=True)) == [WaitOutcome.RECEIVED]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_children_of_a_waiting_branch_run_while_another_branch_waits_for_a_signal(backend):
    task = submit("children-beside-signal")
    run_until_idle()
    task = get_task(task.id)
    assert (task.status, task.waiting_for) == (TaskStatus.WAITING, "ok")
    assert "spread" in task.progress["done"]  # its children ran and it went on
    assert task.outputs["spread"] == [0, 1, 4]
    send_signal(task.id, "ok", "yes")
    run_until_idle()
    task = get_task(task.id)
    assert (task.status, task.result) == (TaskStatus.COMPLETED, ["yes", [0, 1, 4]])


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_straight_line_s_steps_read_earlier_return_values_as_outputs(backend):
    task = submit("reads-outputs")
    run_until_idle()
    task = get_task(task.id)
    assert (task.status, task.result) == (TaskStatus.COMPLETED, {"one": 1, "two": 2})
    assert task.outputs == {"one": 1, "two": 2, "both": {"one": 1, "two": 2}}
    assert task.progress == {}  # a straight line keeps no graph progress
    task.requeue(from_step="two")
    assert get_task(task.id).outputs == {"one": 1}  # those after it are to run again


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_checkpoints_of_steps_that_end_together_share_a_commit(backend, parallel):
    if backend != "postgres":
        pytest.skip("which rows one transaction wrote is read from PostgreSQL's xmin")
    task = submit("batched")
    run_until_idle()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    with connections[backend].cursor() as cursor:
        cursor.execute(
            "SELECT name, xmin::text FROM salvador_steprun WHERE task_id = %s", [task.id]
        )
        commit_of = dict(cursor.fetchall())
    assert len({commit_of[name] for name in ("q1", "q2", "q3")}) == 1  # one commit
    assert commit_of["holds"] != commit_of["q1"]
    done = task.progress["done"]
    assert done[0] == "root"
    assert done[1] == "holds"  # ended first: its checkpoint held the others back
    assert done[-1] == "join"
    assert all(runs(task, name) == 1 for name in ("root", "holds", "q1", "q2", "q3", "join"))


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_branch_threads_reconnect_after_the_database_dropped_their_connections(backend):
    if connections[backend].vendor == "sqlite":
        pytest.skip("a server drops the connections (no server: SQLite)")
    from salvador_django.engine.runner import Engine
    from salvador_django.leases import Lease
    from salvador_django.models import Task as Tasks

    engine = Engine(database=backend, worker_name="test", parallelism=4)

    def run_one() -> Task:
        task = submit("diamond")
        claimed = Tasks.objects.using(backend).claim(["diamond"], "test:1", 60)
        engine.run(claimed[0], Lease(claimed[0].id, "test:1"))
        return get_task(task.id)

    try:
        assert run_one().status == TaskStatus.COMPLETED  # the branch threads connected
        drop_connections(connections[backend], own=False)  # as a server restart would
        time.sleep(1.2)
        task = run_one()
        assert task.status == TaskStatus.COMPLETED, task.error
    finally:
        engine.close()


@pytest.mark.parametrize("workflow", ["line-loses-db", "graph-loses-db", "atomic-loses-db"])
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_step_whose_database_connection_breaks_is_not_failed(backend, workflow):
    if connections[backend].vendor == "sqlite":
        pytest.skip("a server drops the connection (no server: SQLite)")
    from django.db import connections as all_connections

    from salvador_django.engine.outcome import CheckpointFailed
    from salvador_django.engine.runner import Engine
    from salvador_django.leases import Lease

    task = submit(workflow)
    claimed = Task.objects.using(backend).claim([workflow], "test:1", 60)[0]
    engine = Engine(database=backend, worker_name="test", parallelism=1)
    try:
        with pytest.raises(CheckpointFailed, match="the database went away under the step"):
            engine.run(claimed, Lease(claimed.id, "test:1"))
    finally:
        engine.close()
        all_connections[backend].close()
    task = get_task(task.id)
    assert task.status == TaskStatus.RUNNING  # left to its lease: it runs again
    assert not StepRun.objects.using(backend).filter(task=task, status="failed").exists()


# MySQL/MariaDB check foreign keys at once, not at commit: no commit fails there.
@pytest.mark.only_backend("sqlite", "postgres")
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_branch_whose_commit_failed_is_not_claimed_done_by_a_later_checkpoint(backend):
    """b1's commit fails (in doubt, as when the server goes away at COMMIT) while b2
    runs: b2's checkpoint must not write a progress that counts b1 as done."""
    from salvador_django.engine.outcome import CheckpointFailed
    from salvador_django.engine.runner import Engine
    from salvador_django.leases import Lease

    task = submit("commit-fails")
    engine = Engine(database=backend, worker_name="test", parallelism=2)
    try:
        claimed = Task.objects.using(backend).claim(["commit-fails"], "test:1", 60)[0]
        with pytest.raises(CheckpointFailed):
            engine.run(claimed, Lease(claimed.id, "test:1"))
        left = get_task(task.id)
        assert left.progress["done"] == ["a"]  # b2 wrote nothing once b1's commit failed
        assert runs(task, "b2") == 1
        Task.objects.using(backend).filter(id=task.id).update(claimed_by="", status="pending")
        claimed = Task.objects.using(backend).claim(["commit-fails"], "test:2", 60)[0]
        engine.run(claimed, Lease(claimed.id, "test:2"))
    finally:
        engine.close()
    task = get_task(task.id)
    assert task.status == TaskStatus.COMPLETED, task.error
    completed = StepRun.objects.using(backend).filter(task=task, status=StepRunStatus.COMPLETED)
    assert sorted(completed.values_list("name", flat=True)) == ["a", "b1", "b2", "join"]
    # b1's first run left nothing: its event went with its transaction.
    assert [runs(task, name) for name in ("a", "b1", "b2", "join")] == [1, 1, 2, 1]
