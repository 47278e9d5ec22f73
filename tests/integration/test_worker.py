"""Worker threads, leases, heartbeat, reaper and shutdown, on SQLite and PostgreSQL."""

import logging
import re
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connections, transaction
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext

from salvador_django import TaskStatus, Workflow, submit
from salvador_django.leases import Lease, reap_expired_leases
from salvador_django.models import Task
from salvador_django.queues import get_queue
from salvador_django.worker import Worker, WorkerOptions
from tests.factories import TaskFactory
from tests.support.waiting import (
    assert_ran_in_order_once,
    run_in_threads,
    running_worker,
    wait_until,
)
from tests.testapp.models import Event


def burst(**options):
    worker = Worker(WorkerOptions.from_settings(burst=True, **options))
    assert worker.run()
    return worker


def test_500_tasks_on_4_threads_run_every_step_once_in_order(backend, queue_name):
    with transaction.atomic(using=backend):
        tasks = [submit("three-steps", {"n": n}) for n in range(500)]
    burst(concurrency=4)
    assert Task.objects.using(backend).filter(status=TaskStatus.COMPLETED).count() == 500
    assert_ran_in_order_once(backend, [t.id for t in tasks])


def test_failures_stop_only_their_own_chain(backend, queue_name):
    good = [submit("three-steps", {}) for _ in range(5)]
    bad = [submit("breaks-second", {}) for _ in range(5)]
    burst(concurrency=2)
    statuses = dict(Task.objects.using(backend).values_list("id", "status"))
    assert {statuses[t.id] for t in good} == {TaskStatus.COMPLETED}
    assert {statuses[t.id] for t in bad} == {TaskStatus.FAILED}
    assert (
        not Event.objects.using(backend)
        .filter(task_id__in=[t.id for t in bad], step="third")
        .exists()
    )


def test_rolled_back_submit_leaves_no_task_and_no_queue_entry(backend):
    wakeup = get_queue().wakeup
    before = wakeup.generation

    def failing_transaction():
        with transaction.atomic(using=backend):
            submit("three-steps", {})
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        failing_transaction()
    assert not Task.objects.using(backend).exists()
    assert wakeup.generation == before
    burst()
    assert not Event.objects.using(backend).exists()


def test_concurrent_submits_with_one_idempotency_key_create_one_task(backend):
    def submit_order(n):
        return submit("three-steps", {"n": n}, idempotency_key="order-42").id

    ids = run_in_threads(submit_order, 8)
    assert not [i for i in ids if isinstance(i, Exception)], ids
    assert len(set(ids)) == 1
    assert Task.objects.using(backend).count() == 1


def test_idempotent_submit_inside_a_caller_transaction_keeps_it_usable(backend):
    first = submit("three-steps", {}, idempotency_key="k")
    with transaction.atomic(using=backend):
        again = submit("three-steps", {}, idempotency_key="k")
        other = submit("three-steps", {}, idempotency_key="k2")
    assert again.id == first.id
    assert Task.objects.using(backend).filter(id=other.id).exists()


def test_reaper_returns_expired_leases_to_pending_at_the_same_step(backend):
    task = TaskFactory(running=True, step=1, step_name="second")
    live = TaskFactory(running=True)
    Task.objects.using(backend).filter(id=task.id).update(
        lease_expires_at=Now() - timedelta(seconds=1)
    )
    assert reap_expired_leases(backend, max_recoveries=5) == 1
    task.refresh_from_db()
    assert (task.status, task.step, task.step_name, task.recoveries) == (
        TaskStatus.PENDING,
        1,
        "second",
        1,
    )
    assert task.claimed_by is None
    live.refresh_from_db()
    assert live.status == TaskStatus.RUNNING


def test_burst_reaps_expired_leases_before_it_looks_for_work(backend, queue_name):
    task = TaskFactory(running=True, step=1, step_name="second")
    Task.objects.using(backend).filter(id=task.id).update(
        lease_expires_at=Now() - timedelta(seconds=1)
    )
    burst()
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert list(task.step_runs.values_list("name", flat=True).order_by("index")) == [
        "second",
        "third",
    ]


def test_a_task_whose_lease_keeps_expiring_is_failed_as_poison(backend):
    task = TaskFactory(running=True, recoveries=4)
    Task.objects.using(backend).filter(id=task.id).update(
        lease_expires_at=Now() - timedelta(seconds=1)
    )
    assert reap_expired_leases(backend, max_recoveries=5) == 0
    task.refresh_from_db()
    assert task.status == TaskStatus.FAILED
    assert "Lease expired 5 times" in task.error
    assert task.failed_step == task.step_name != ""  # the step that kept killing its worker


@pytest.mark.only_backend("postgres")
def test_the_reaper_skips_a_row_an_open_transaction_holds(backend):
    # A worker paused inside an atomic step's transaction holds its task's row. The
    # sweep must not wait for it: it reaps the other expired leases and goes on.
    held, free = TaskFactory(running=True), TaskFactory(running=True)
    Task.objects.using(backend).filter(id__in=[held.id, free.id]).update(
        lease_expires_at=Now() - timedelta(seconds=1)
    )
    params = connections[backend].get_connection_params()
    with psycopg.connect(**params) as paused:
        paused.execute("SELECT 1 FROM salvador_task WHERE id = %s FOR UPDATE", [held.id])

        def reap() -> None:
            try:
                reap_expired_leases(backend, max_recoveries=5)
            finally:
                connections.close_all()

        reaping = threading.Thread(target=reap)
        reaping.start()
        reaping.join(timeout=10)
        assert not reaping.is_alive(), "the reaper waited for the locked row"
        paused.rollback()
    assert Task.objects.using(backend).get(id=free.id).status == TaskStatus.PENDING
    assert Task.objects.using(backend).get(id=held.id).status == TaskStatus.RUNNING
    assert reap_expired_leases(backend, max_recoveries=5) == 1  # a later sweep takes it
    assert Task.objects.using(backend).get(id=held.id).status == TaskStatus.PENDING


def test_heartbeat_extends_held_leases_and_flags_lost_ones(backend):
    held = TaskFactory(running=True, claimed_by="me:1")
    stolen = TaskFactory(running=True, claimed_by="me:2")
    Task.objects.using(backend).filter(id=held.id).update(
        lease_expires_at=Now() + timedelta(seconds=5)
    )
    worker = Worker(WorkerOptions.from_settings())
    seconds = worker.options.lease_seconds
    held_lease = Lease(held.id, "me:1", seconds=seconds, renewed_at=time.monotonic() - 10)
    stolen_lease = Lease(stolen.id, "me:2", seconds=seconds)
    worker.leases.add(held_lease)
    worker.leases.add(stolen_lease)
    Task.objects.using(backend).filter(id=stolen.id).update(claimed_by="other")
    worker.heartbeat()
    held.refresh_from_db()
    assert held.lease_expires_at - held.updated_at > timedelta(seconds=50)
    assert not held_lease.lost.is_set()
    assert held_lease.renewed_at > time.monotonic() - 5
    assert stolen_lease.lost.is_set()


def test_a_late_renewal_is_logged_with_how_late_and_what_it_lost(backend, caplog):
    held = TaskFactory(running=True, claimed_by="me:1")
    stolen = TaskFactory(running=True, claimed_by="other")

    def heartbeat(held_for: float) -> list[str]:
        worker = Worker(WorkerOptions.from_settings())
        seconds = worker.options.lease_seconds
        ago = time.monotonic() - held_for
        worker.leases.add(Lease(held.id, "me:1", seconds=seconds, renewed_at=ago))
        worker.leases.add(Lease(stolen.id, "me:2", seconds=seconds, renewed_at=ago))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="salvador_django"):
            worker.heartbeat()
        return [r.message for r in caplog.records if "leases renewed" in r.message]

    assert heartbeat(10) == []  # a sixth of the 60s lease
    late = heartbeat(45)
    assert len(late) == 1
    assert re.match(
        r"salvador: leases renewed 45\.\ds after the last renewal \(the write took 0\.\ds; "
        r"lease 60s\); 1 of 2 lost$",
        late[0],
    ), late[0]


def test_a_heartbeat_whose_leases_are_all_held_is_one_update(backend):
    tasks = [TaskFactory(running=True, claimed_by=f"me:{n}") for n in range(3)]
    worker = Worker(WorkerOptions.from_settings())
    for task in tasks:
        worker.leases.add(Lease(task.id, task.claimed_by, seconds=worker.options.lease_seconds))
    worker.presence.register()
    with CaptureQueriesContext(connections[backend]) as queries:
        worker.heartbeat()
    # One for the leases, one for the worker's row in the workers table.
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE", "UPDATE"]
    assert "salvador_workerprocess" in queries.captured_queries[1]["sql"]
    assert not any(lease.lost.is_set() for lease in worker.leases.snapshot())


def test_stop_lets_the_running_step_finish_and_releases_the_task(backend, queue_name):
    task = submit("three-steps", {"sleep": {"second": 0.5}})
    with running_worker(concurrency=1):
        wait_until(
            lambda: Event.objects.using(backend).filter(task_id=task.id, step="second").exists()
        )
    task.refresh_from_db()
    assert (task.status, task.step, task.step_name) == (TaskStatus.PENDING, 2, "third")
    assert task.claimed_by is None
    assert Event.objects.using(backend).get(task_id=task.id, step="second").finished is not None
    assert not Event.objects.using(backend).filter(task_id=task.id, step="third").exists()


def test_an_idle_worker_starts_a_submitted_task_without_waiting_a_poll_interval(
    backend, queue_name, settings, monkeypatch
):
    settings.SALVADOR = {**settings.SALVADOR, "POLL_INTERVAL": 30}
    queue = get_queue()  # the worker's
    looking: set[str] = set()
    both_waiting = threading.Event()
    claim = queue.claim

    def counted_claim(*args, **kwargs):
        looking.add(threading.current_thread().name)
        if len(looking) == 2:
            both_waiting.set()
        return claim(*args, **kwargs)  # nothing is due: it waits up to the poll interval

    monkeypatch.setattr(queue, "claim", counted_claim)
    with running_worker(concurrency=2):
        assert both_waiting.wait(timeout=10)  # both threads are in their waiting claim
        task = submit("three-steps", {})
        wait_until(
            lambda: Task.objects.using(backend).get(id=task.id).status == TaskStatus.COMPLETED,
            timeout=5,  # far below the 30 s poll interval
        )


def test_worker_only_runs_the_workflows_it_was_given(backend, queue_name, workflow_names):
    submit("three-steps", {})
    other = submit("breaks-second", {})
    burst(workflows=["three-steps"])
    other.refresh_from_db()
    assert other.status == TaskStatus.PENDING


def test_burst_ignores_tasks_that_are_not_due(backend, queue_name):
    later = submit("three-steps", {}, delay=3600)
    burst()
    later.refresh_from_db()
    assert later.status == TaskStatus.PENDING


def test_a_workflow_defined_in_a_test_runs_on_worker_threads(backend, queue_name, workflow_names):
    workflow_names.append("worker-threads")
    seen = set()
    workflow = Workflow("worker-threads").step(
        "a", lambda t: seen.add(threading.current_thread().name)
    )
    for _ in range(40):
        workflow.submit()
    burst(workflows=["worker-threads"], concurrency=3)
    assert seen <= {"salvador-0", "salvador-1", "salvador-2"}
    assert Task.objects.using(backend).filter(status=TaskStatus.COMPLETED).count() == 40
