"""A checkpoint that fails because the database connection broke is tried again.

While the lease holds, the engine tries the checkpoint again once the database
answers, so a short outage replays nothing; a checkpoint that committed before its
connection broke is not written twice; an atomic step's (whose own writes went with
the connection) and one whose lease ran out are left to the reaper.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError, connections

from salvador_django import TaskStatus, Workflow
from salvador_django.engine import CheckpointFailed, Engine, Outcome
from salvador_django.leases import Lease
from salvador_django.models import StepRun, Task

_CHECKPOINT = re.compile(
    r'^\s*(WITH task AS \(\s*UPDATE|UPDATE ["`]salvador_task["`])', re.IGNORECASE
)


def is_checkpoint(sql: str) -> bool:
    claim = "SET status = 'running'" in sql  # it names every column it returns
    return bool(_CHECKPOINT.match(sql)) and "step_name" in sql and not claim


@contextlib.contextmanager
def checkpoints_fail(
    backend: str, times: int, *, after_commit: bool = False
) -> Iterator[list[str]]:
    """The next ``times`` checkpoint statements fail as if the connection broke.

    ``after_commit``: the statement runs (and, outside a transaction, commits) first.
    """
    failed: list[str] = []

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any):
        if not is_checkpoint(sql) or len(failed) >= times:
            return execute(sql, params, many, context)
        failed.append(sql)
        if after_commit:
            execute(sql, params, many, context)
        raise OperationalError("server closed the connection unexpectedly")

    with connections[backend].execute_wrapper(wrapper):
        yield failed


def run_one(backend: str, workflow: Workflow, *, seconds: float | None = 60) -> tuple[Task, Any]:
    task = workflow.submit()
    [claimed] = Task.objects.using(backend).claim([workflow.name], "t", 60)
    engine = Engine(database=backend, worker_name="w")
    try:
        return task, engine.run(claimed, Lease(claimed.id, "t", seconds=seconds))
    except CheckpointFailed as exc:
        return task, exc


def counting(calls: list[str], name: str) -> Callable[[Task], None]:
    def step(task: Task) -> None:
        calls.append(name)

    return step


@pytest.mark.only_backend("postgres")
def test_a_checkpoint_whose_connection_was_killed_is_written_when_the_database_answers(
    backend, workflow_names
):
    """The connection is really terminated by the server, as in a restart."""
    workflow_names.append("checkpoint-killed-connection")
    calls: list[str] = []

    def kill_own_connection(task: Task) -> None:
        calls.append("a")
        with connections[backend].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        killer = connections.create_connection(backend)
        try:
            with killer.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            killer.close()

    workflow = (
        Workflow("checkpoint-killed-connection")
        .step("a", kill_own_connection)
        .step("b", counting(calls, "b"))
    )
    task, outcome = run_one(backend, workflow)
    assert outcome == Outcome.COMPLETED
    assert calls == ["a", "b"]  # nothing replayed
    stored = Task.objects.using(backend).get(id=task.id)
    assert stored.status == TaskStatus.COMPLETED
    runs = StepRun.objects.using(backend).filter(task_id=task.id).order_by("index")
    assert [(r.name, r.status) for r in runs] == [("a", "completed"), ("b", "completed")]


def test_a_checkpoint_that_failed_is_tried_again_and_written_once(backend, workflow_names):
    workflow_names.append("checkpoint-fails-twice")
    calls: list[str] = []
    workflow = (
        Workflow("checkpoint-fails-twice")
        .step("a", counting(calls, "a"))
        .step("b", counting(calls, "b"))
    )
    with checkpoints_fail(backend, 2) as failed:
        task, outcome = run_one(backend, workflow)
    assert len(failed) == 2
    assert outcome == Outcome.COMPLETED
    assert calls == ["a", "b"]
    assert StepRun.objects.using(backend).filter(task_id=task.id).count() == 2


@pytest.mark.only_backend("postgres")  # one statement, so it commits on its own
def test_a_checkpoint_that_committed_before_its_connection_broke_is_not_written_twice(
    backend, workflow_names
):
    workflow_names.append("checkpoint-committed")
    calls: list[str] = []
    workflow = (
        Workflow("checkpoint-committed")
        .step("a", counting(calls, "a"))
        .step("b", counting(calls, "b"))
    )
    with checkpoints_fail(backend, 1, after_commit=True) as failed:
        task, outcome = run_one(backend, workflow)
    assert len(failed) == 1
    assert outcome == Outcome.COMPLETED
    assert calls == ["a", "b"]
    runs = StepRun.objects.using(backend).filter(task_id=task.id).order_by("index")
    assert [(r.name, r.status) for r in runs] == [("a", "completed"), ("b", "completed")]


def test_an_atomic_steps_checkpoint_is_not_tried_again(backend, workflow_names):
    """Its own writes were in the transaction that failed: it must run again."""
    workflow_names.append("checkpoint-atomic")
    calls: list[str] = []
    workflow = Workflow("checkpoint-atomic").step("a", counting(calls, "a"), atomic=True)
    with checkpoints_fail(backend, 1) as failed:
        task, outcome = run_one(backend, workflow)
    assert len(failed) == 1
    assert isinstance(outcome, CheckpointFailed)
    stored = Task.objects.using(backend).get(id=task.id)
    assert (stored.status, stored.step) == (TaskStatus.RUNNING, 0)  # for the reaper
    assert not StepRun.objects.using(backend).filter(task_id=task.id).exists()


def test_a_checkpoint_is_tried_again_no_longer_than_the_lease(backend, workflow_names):
    workflow_names.append("checkpoint-down")
    calls: list[str] = []
    workflow = Workflow("checkpoint-down").step("a", counting(calls, "a"))
    with checkpoints_fail(backend, 1000) as failed:
        task, outcome = run_one(backend, workflow, seconds=1.0)
    assert isinstance(outcome, CheckpointFailed)
    assert 2 <= len(failed) < 20
    stored = Task.objects.using(backend).get(id=task.id)
    assert (stored.status, stored.step) == (TaskStatus.RUNNING, 0)
