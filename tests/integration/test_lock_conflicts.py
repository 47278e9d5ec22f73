"""A write that loses to another's lock runs again instead of failing its caller.

On MySQL/MariaDB two transactions that lock rows in opposite orders deadlock: InnoDB
rolls one back (error 1213). The heartbeat, the reaper and every engine write run
such a write again (``dialect.retry_lock_conflicts``); without it a worker's heartbeat
failed, and its leases ran out under steps that were still running.
"""

from __future__ import annotations

import threading
import time
from uuid import UUID

import pytest
from django.db import OperationalError, connections, transaction

from salvador_django import dialect
from salvador_django.engine.waits import StepWaits
from salvador_django.leases import Lease, renew_leases
from salvador_django.models import Task
from tests.factories import TaskFactory
from tests.support.locks import row_held


@pytest.mark.only_backend("mariadb")
def test_a_deadlock_is_a_lock_conflict_and_runs_again(backend):
    first, second = TaskFactory(), TaskFactory()
    barrier = threading.Barrier(2)
    errors: list[OperationalError] = []

    def cross(one: UUID, other: UUID) -> None:
        try:
            with transaction.atomic(using=backend):
                Task.objects.using(backend).filter(id=one).update(priority=1)
                barrier.wait(10)
                Task.objects.using(backend).filter(id=other).update(priority=2)
        except OperationalError as exc:
            errors.append(exc)
        finally:
            connections[backend].close()

    threads = [
        threading.Thread(target=cross, args=(first.id, second.id)),
        threading.Thread(target=cross, args=(second.id, first.id)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [deadlock] = errors  # InnoDB rolled back one of the two
    assert deadlock.__cause__ is not None
    assert deadlock.__cause__.args[0] == 1213
    assert dialect.lock_conflict(connections[backend], deadlock)

    calls: list[int] = []

    def write() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise deadlock
        return "written"

    assert dialect.retry_lock_conflicts(backend, write) == "written"
    assert len(calls) == 2
    with transaction.atomic(using=backend):  # inside the caller's transaction: its to retry
        assert not dialect.lock_conflict(connections[backend], deadlock)


def test_other_errors_are_not_lock_conflicts(backend):
    error = OperationalError("no such table: nowhere")
    assert not dialect.lock_conflict(connections[backend], error)
    with pytest.raises(OperationalError):
        dialect.retry_lock_conflicts(backend, lambda: (_ for _ in ()).throw(error))


@pytest.mark.only_backend("postgres", "mariadb")
def test_a_heartbeat_waits_for_no_other_task_s_row(backend):
    """The heartbeat finds its rows by id: on MariaDB, found by their token, it locked
    every running task's index entry on its way, waited for a row another worker's
    atomic step held, and deadlocked with a step's end (which locks the row first)."""
    mine = TaskFactory(running=True, claimed_by="me:1")
    theirs = TaskFactory(running=True, claimed_by="them:1")
    before = mine.lease_expires_at
    lease = Lease(mine.id, "me:1", seconds=120)
    heartbeat = threading.Thread(target=lambda: _renew_closing(backend, lease))
    try:
        # An atomic step of another worker, mid-way.
        with row_held(backend, theirs.id, state={"mid": "step"}):
            heartbeat.start()
            heartbeat.join(10)
            waited = heartbeat.is_alive()
    finally:
        if heartbeat.ident is not None:  # started
            heartbeat.join()
    assert not waited, "the heartbeat waited for another task's row"
    assert not lease.lost.is_set()
    mine.refresh_from_db(using=backend)
    assert mine.lease_expires_at > before


def _renew_closing(database: str, lease: Lease) -> None:
    try:
        renew_leases(database, [lease])
    finally:
        connections[database].close()


@pytest.mark.only_backend("postgres", "mariadb")
def test_a_step_starting_children_locks_its_row_before_inserting_them(backend):
    """On InnoDB a child's insert takes a shared lock on its parent's row (the foreign
    key); the parent's own update then needs it exclusive, and a heartbeat queued for
    the row in between made a deadlock of it. The parent's row is taken first."""
    # A parent that started children in an earlier step: it starts more.
    parent = TaskFactory(
        running=True, claimed_by="me:1", workflow="waiting-children", has_children=True
    )
    written, queued = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def parent_s_commit() -> None:  # a step's children, then its checkpoint's update
        try:
            with transaction.atomic(using=backend):
                waits = StepWaits(backend, Task.objects.using(backend).get(id=parent.id), "go")
                waits.children.start_child("waits-for-go")
                waits.children.write()
                written.set()
                assert queued.wait(10)
                time.sleep(0.5)  # the heartbeat's update waits for the row by now
                Task.objects.using(backend).filter(id=parent.id).update(step=1)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections[backend].close()

    def heartbeat() -> None:
        try:
            assert written.wait(10)
            queued.set()
            _renew_closing(backend, Lease(parent.id, "me:1", seconds=60))
        except BaseException as exc:
            errors.append(exc)

    before = _deadlocks(backend)
    threads = [threading.Thread(target=parent_s_commit), threading.Thread(target=heartbeat)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _deadlocks(backend) == before
    assert Task.objects.using(backend).filter(parent_id=parent.id).count() == 1


def _deadlocks(database: str) -> int:
    """The server's count of deadlocks so far (0 where it keeps none: PostgreSQL)."""
    connection = connections[database]
    if connection.vendor != "mysql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        return int(cursor.fetchone()[1])
