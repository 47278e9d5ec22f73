"""The engine's semantics, on SQLite and PostgreSQL, driven through ``run_until_idle``."""

import time
import uuid

import pytest
from django.db import connections
from django.db.models.functions import Now

from salvador_django import Retry, TaskStatus, Workflow, submit
from salvador_django.engine import Engine, Outcome
from salvador_django.leases import Lease
from salvador_django.models import StepRun, Task
from salvador_django.testing import run_until_idle
from tests.support.locks import row_held
from tests.support.tasks import make_due
from tests.support.waiting import run_until_finished
from tests.testapp.models import Event


def events(alias, task):
    return list(
        Event.objects.using(alias)
        .filter(task_id=task.id)
        .order_by("id")
        .values_list("step", "attempt")
    )


def test_steps_run_in_order_and_checkpoint_state_and_output(backend):
    task = submit("three-steps", {"n": 1})
    assert run_until_idle() == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert (task.step, task.step_name, task.error) == (3, "", "")
    assert task.state == {"first": 1, "second": 1, "third": 1}
    assert task.started_at <= task.finished_at
    assert (task.claimed_by, task.lease_expires_at) == (None, None)
    assert events(backend, task) == [("first", 1), ("second", 1), ("third", 1)]
    runs = list(task.step_runs.order_by("index"))
    assert [(r.index, r.name, r.attempt, r.status, r.output) for r in runs] == [
        (0, "first", 1, "completed", {"step": "first"}),
        (1, "second", 1, "completed", {"step": "second"}),
        (2, "third", 1, "completed", {"step": "third"}),
    ]
    assert all(r.worker == "run_until_idle" and r.started_at <= r.finished_at for r in runs)


def test_a_failing_step_stops_the_chain(backend):
    task = submit("breaks-second", {})
    run_until_idle()
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    assert (task.step, task.step_name, task.attempt) == (1, "second", 1)
    assert task.error == "ValueError: second failed on purpose"
    assert events(backend, task) == [("first", 1), ("second", 1)]  # third never ran
    failed = task.step_runs.get(status="failed")
    assert (failed.index, failed.name) == (1, "second")
    assert "raise ValueError" in failed.traceback
    assert task.finished_at is not None


def test_failed_attempts_wait_for_their_backoff_without_holding_a_worker(backend):
    task = submit("flaky", {"succeed_on": 3})
    assert run_until_idle() == 1  # attempt 1 fails; the retry is not due yet
    task.refresh_from_db()
    assert (task.status, task.attempt, task.step_name) == (TaskStatus.PENDING, 1, "unreliable")
    assert task.error == "ConnectionError: attempt 1 failed"
    assert task.claimed_by is None
    assert not Task.objects.using(backend).due().exists()
    # The backoff's timing is what this test checks: waited out in real time.
    assert run_until_finished(task, timeout=5).status == TaskStatus.COMPLETED
    runs = list(task.step_runs.order_by("id").values_list("name", "attempt", "status"))
    assert runs == [
        ("unreliable", 1, "failed"),
        ("unreliable", 2, "failed"),
        ("unreliable", 3, "completed"),
        ("after", 1, "completed"),
    ]
    third_attempt = task.step_runs.get(attempt=3, name="unreliable")
    second_attempt = task.step_runs.get(attempt=2, name="unreliable")
    assert (third_attempt.started_at - second_attempt.finished_at).total_seconds() >= 0.04


def test_spent_retries_fail_the_task(backend):
    task = submit("flaky", {"succeed_on": 99})
    for _ in range(3):  # one attempt at least each time
        run_until_idle()
        make_due(task, backend)  # the retry's backoff is over
    task.refresh_from_db()
    assert (task.status, task.attempt) == (TaskStatus.FAILED, 3)
    assert task.step_runs.filter(status="failed").count() == 3


def test_exceptions_outside_retry_on_fail_at_once(backend, workflow_names):
    workflow_names.append("engine-retry-on")
    workflow = Workflow("engine-retry-on")

    @workflow.step(
        "picky", retry=Retry(max_attempts=5, initial_delay=0, retry_on=(ConnectionError,))
    )
    def picky(task):
        raise KeyError("not retried")

    task = workflow.submit()
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.attempt, task.error) == (
        TaskStatus.FAILED,
        1,
        "KeyError: 'not retried'",
    )


def test_atomic_step_commits_its_writes_with_its_checkpoint(backend):
    ok = submit("atomic", {})
    broken = submit("atomic", {"fail": True})
    run_until_idle()
    ok.refresh_from_db()
    broken.refresh_from_db()
    assert ok.status == TaskStatus.COMPLETED
    assert Event.objects.using(backend).filter(task_id=ok.id).count() == 1
    assert broken.status == TaskStatus.FAILED
    assert not Event.objects.using(backend).filter(task_id=broken.id).exists()  # rolled back


def test_atomic_step_writes_are_rolled_back_when_the_lease_is_lost(backend):
    task = submit("atomic", {})
    token = f"test:{uuid.uuid4().hex}"
    [claimed] = Task.objects.using(backend).claim(["atomic"], token, 60)
    Task.objects.using(backend).filter(id=task.id).update(claimed_by="someone-else")
    engine = Engine(database=backend, worker_name="test")
    assert engine.run(claimed, Lease(claimed.id, token)) == Outcome.LOST
    assert not Event.objects.using(backend).filter(task_id=task.id).exists()
    assert not StepRun.objects.using(backend).filter(task_id=task.id).exists()


def test_a_worker_that_lost_its_lease_writes_nothing(backend):
    task = submit("three-steps", {})
    token = f"test:{uuid.uuid4().hex}"
    [claimed] = Task.objects.using(backend).claim(["three-steps"], token, 60)
    # The lease expired and the reaper gave the task to another worker.
    Task.objects.using(backend).filter(id=task.id).update(claimed_by="other-worker")
    before = Task.objects.using(backend).values().get(id=task.id)
    engine = Engine(database=backend, worker_name="zombie")
    assert engine.run(claimed, Lease(claimed.id, token)) == Outcome.LOST
    assert Task.objects.using(backend).values().get(id=task.id) == before
    assert not StepRun.objects.using(backend).filter(task_id=task.id).exists()
    assert events(backend, task) == [("first", 1)]  # the step ran; its checkpoint was refused


def test_a_lost_lease_stops_the_task_before_the_next_step(backend):
    task = submit("three-steps", {})
    token = f"test:{uuid.uuid4().hex}"
    [claimed] = Task.objects.using(backend).claim(["three-steps"], token, 60)
    lease = Lease(claimed.id, token)
    lease.lost.set()  # the heartbeat found the claim gone
    assert Engine(database=backend, worker_name="w").run(claimed, lease) == Outcome.LOST
    assert events(backend, task) == []


def test_a_paused_worker_does_not_start_a_step_whose_lease_was_taken(backend):
    task = submit("three-steps", {})
    token = f"test:{uuid.uuid4().hex}"
    [claimed] = Task.objects.using(backend).claim(["three-steps"], token, 60)
    # No heartbeat for half a lease (the process was stopped), and meanwhile the
    # lease expired and another worker claimed the task. Nothing has told this one.
    lease = Lease(claimed.id, token, seconds=60, renewed_at=time.monotonic() - 31)
    Task.objects.using(backend).filter(id=task.id).update(claimed_by="other-worker")
    before = Task.objects.using(backend).values().get(id=task.id)
    assert Engine(database=backend, worker_name="paused").run(claimed, lease) == Outcome.LOST
    assert events(backend, task) == []  # the step never started
    assert Task.objects.using(backend).values().get(id=task.id) == before


def test_a_late_heartbeat_is_made_up_before_the_next_step(backend):
    task = submit("three-steps", {})
    token = f"test:{uuid.uuid4().hex}"
    [claimed] = Task.objects.using(backend).claim(["three-steps"], token, 60)
    lease = Lease(claimed.id, token, seconds=60, renewed_at=time.monotonic() - 31)
    # The claim is still ours: the engine renews it, then runs the steps.
    assert Engine(database=backend, worker_name="slow").run(claimed, lease) == Outcome.COMPLETED
    assert lease.renewed_at > time.monotonic() - 5
    assert not lease.lost.is_set()
    assert events(backend, task) == [("first", 1), ("second", 1), ("third", 1)]


@pytest.mark.only_backend("sqlite")
def test_an_atomic_step_whose_begin_waited_past_its_lease_does_not_run(backend, workflow_names):
    workflow_names.append("engine-waits-to-begin")
    calls = []
    Workflow("engine-waits-to-begin").step("write", lambda t: calls.append(t.id), atomic=True)
    task = submit("engine-waits-to-begin", {})
    token = f"test:{uuid.uuid4().hex}"
    [claimed] = Task.objects.using(backend).claim(["engine-waits-to-begin"], token, 60)
    # Another connection (a paused worker's, say) holds SQLite's write lock for longer
    # than the lease; meanwhile the lease expires and another worker takes the task.
    with row_held(backend, task.id, seconds=1.0, claimed_by="other-worker"):
        lease = Lease(claimed.id, token, seconds=1)  # just confirmed: no check before BEGIN
        before = time.monotonic()
        outcome = Engine(database=backend, worker_name="waited").run(claimed, lease)
        assert time.monotonic() - before > 0.5  # BEGIN waited for the lock
    assert outcome == Outcome.LOST
    assert calls == []  # the step never started
    assert not StepRun.objects.using(backend).filter(task_id=task.id).exists()


def test_task_resumes_by_step_name_when_steps_are_inserted(backend, workflow_names):
    workflow_names.append("engine-resume")
    calls = []
    workflow = (
        Workflow("engine-resume")
        .step("a", lambda t: calls.append("a"))
        .step("b", lambda t: calls.append("b"))
    )
    task = workflow.submit()
    Task.objects.using(backend).filter(id=task.id).update(step=1, step_name="b")
    # A deploy inserts a step before "b": the task still resumes at "b".
    workflow._steps.insert(
        1, workflow._steps[0].__class__(name="new", fn=lambda t: calls.append("new"))
    )
    workflow._index = {s.name: i for i, s in enumerate(workflow._steps)}
    run_until_idle()
    task.refresh_from_db()
    assert calls == ["b"]
    assert (task.status, task.step) == (TaskStatus.COMPLETED, 3)


def test_task_at_a_removed_step_fails_clearly(backend, workflow_names):
    workflow_names.append("engine-removed")
    workflow = Workflow("engine-removed").step("a", lambda t: None)
    task = workflow.submit()
    Task.objects.using(backend).filter(id=task.id).update(step_name="gone")
    run_until_idle()
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    assert "StepNotFound" in task.error
    assert "'gone'" in task.error


def test_non_json_state_fails_the_attempt_clearly(backend, workflow_names):
    workflow_names.append("engine-bad-state")

    def bad_state(task):
        task.state["when"] = {1, 2}

    task = Workflow("engine-bad-state").step("a", bad_state).submit()
    run_until_idle()
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    assert task.error.startswith(
        "NotSerialisable: task.state after step 'a' is not JSON-serialisable: "
    )


def test_a_step_over_its_timeout_fails_with_step_timeout(backend, workflow_names):
    workflow_names.append("engine-timeout")
    seen = []

    def slow(task):
        seen.append(task.deadline)
        time.sleep(0.2)

    task = Workflow("engine-timeout").step("slow", slow, timeout=0.05).submit()
    run_until_idle()
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    assert task.error.startswith("StepTimeout: Step 'slow' ran longer than its timeout")
    assert seen[0] is not None


def test_step_key_is_stable_per_task_and_step(backend, workflow_names):
    workflow_names.append("engine-step-key")
    keys = []
    workflow = Workflow("engine-step-key").step("a", lambda t: keys.append(t.step_key()))
    workflow.step("b", lambda t: keys.append(t.step_key()))
    task = workflow.submit()
    run_until_idle()
    assert keys == [f"{task.id}:a", f"{task.id}:b"]


def test_higher_priority_runs_first(backend, workflow_names):
    workflow_names.append("engine-priority")
    order = []
    workflow = Workflow("engine-priority").step("a", lambda t: order.append(t.body))
    for n in range(3):
        workflow.submit(n)
    workflow.submit("urgent", priority=10)
    run_until_idle()
    assert order == ["urgent", 0, 1, 2]


class CommitCounter:
    """Counts transactions that wrote: commits of atomic blocks and autocommit writes."""

    def __init__(self, alias):
        self.connection = connections[alias]
        self.writes = 0
        self.statements = []

    def __call__(self, execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper()
        is_write = verb in {"INSERT", "UPDATE", "DELETE", "WITH"}
        if is_write:
            self.statements.append(verb)
        if is_write and not self.connection.in_atomic_block:
            self.writes += 1  # autocommit: the statement is its own transaction
        return execute(sql, params, many, context)


def test_one_claim_plus_one_commit_per_step(backend, workflow_names, monkeypatch):
    workflow_names.append("engine-commits")
    workflow = Workflow("engine-commits")
    for name in ("a", "b", "c"):
        workflow.step(name, lambda t: None)
    workflow.submit()
    counter = CommitCounter(backend)
    commits = []
    real_commit = counter.connection.commit
    monkeypatch.setattr(counter.connection, "commit", lambda: commits.append(1) or real_commit())
    engine = Engine(database=backend, worker_name="w")
    with counter.connection.execute_wrapper(counter):
        [task] = Task.objects.using(backend).claim(["engine-commits"], "token", 60)
        assert engine.run(task, Lease(task.id, "token")) == Outcome.COMPLETED
    # One claim plus one checkpoint per step: on PostgreSQL each is one autocommit
    # statement; on SQLite a checkpoint is an atomic block (UPDATE + INSERT, one commit).
    assert counter.writes + len(commits) == 4
    assert counter.statements[0] in {"UPDATE", "WITH"}  # the claim comes first
    assert Task.objects.using(backend).get().status == TaskStatus.COMPLETED


def test_lease_expiry_uses_the_database_clock(backend):
    submit("three-steps", {})
    [claimed] = Task.objects.using(backend).claim(["three-steps"], "clock", 30)
    db_now = Task.objects.using(backend).annotate(now=Now()).values_list("now", flat=True).first()
    assert abs((claimed.lease_expires_at - db_now).total_seconds() - 30) < 5


@pytest.mark.parametrize("limit", [1, 3])
def test_claims_are_exclusive(backend, limit):
    for n in range(4):
        submit("three-steps", {"n": n})
    first = Task.objects.using(backend).claim(["three-steps"], "a", 60, limit=limit)
    second = Task.objects.using(backend).claim(["three-steps"], "b", 60, limit=10)
    assert len(first) == limit
    assert len(second) == 4 - limit
    assert not {t.id for t in first} & {t.id for t in second}
    assert Task.objects.using(backend).claim(["three-steps"], "c", 60) == []


def test_the_portable_claim_used_by_mysql_is_exclusive_too(backend):
    """The ORM-only claim (MySQL, SQLite < 3.35), exercised on this test's database."""
    tasks = [submit("three-steps", {"n": n}) for n in range(3)]
    later = submit("three-steps", {}, delay=3600)
    qs = Task.objects.using(backend)
    first = qs._claim_conditional(["three-steps"], "a", 60, 2)
    second = qs._claim_conditional(["three-steps"], "b", 60, 5)
    assert len(first) == 2
    assert [t.id for t in second] == [t.id for t in tasks if t.id not in {c.id for c in first}]
    assert qs._take(qs.due().filter(id__in=[later.id, tasks[0].id]), "c", 60) == []
    assert {t.status for t in first + second} == {TaskStatus.RUNNING}
