"""A worker under faults: no loop dies of an error, a burst gives up, shutdown keeps
to its grace period, idle threads keep to CONN_MAX_AGE, and a server that allows too
few connections is named at start."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from django.db import connections

from salvador_django import TaskStatus, Workflow, submit
from salvador_django.exceptions import QueueUnavailable
from salvador_django.models import Task
from salvador_django.preflight import connection_limit, warn_if_connections_short
from salvador_django.queues.database import DatabaseQueue
from salvador_django.worker import Worker, WorkerOptions
from tests.support.waiting import wait_until


class FaultyQueue(DatabaseQueue):
    """The database queue, whose ``claim`` and ``reannounce`` first raise ``errors``."""

    def __init__(self, database: str, *, claims: list[Exception], sweeps: list[Exception]) -> None:
        super().__init__(database)
        self.claim_errors = claims
        self.sweep_errors = sweeps
        self.sweeps = 0

    def claim(self, workflows: Any, timeout: float, **kwargs: Any) -> list[Task]:
        if self.claim_errors:
            raise self.claim_errors.pop(0)
        return super().claim(workflows, timeout, **kwargs)

    def reannounce(self, workflows: Any = None) -> int:
        self.sweeps += 1
        if self.sweep_errors:
            raise self.sweep_errors.pop(0)
        return super().reannounce(workflows)


@pytest.fixture
def faulty_queue(backend):
    """Makes ``FaultyQueue``s on the test's database; closes them (and their listener)."""
    made: list[FaultyQueue] = []

    def make(*, claims: list[Exception], sweeps: list[Exception]) -> FaultyQueue:
        made.append(FaultyQueue(backend, claims=claims, sweeps=sweeps))
        return made[-1]

    yield make
    for queue in made:
        queue.close()


def run_in_thread(worker: Worker, timeout: float = 20) -> float:
    """Run ``worker`` to its end in a thread; how long it took (fails past ``timeout``)."""
    began = time.monotonic()
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    runner.join(timeout)
    if runner.is_alive():
        worker.stop()
        runner.join(30)
        pytest.fail(f"the worker was still running after {timeout}s")
    return time.monotonic() - began


def test_a_runner_goes_on_after_an_unexpected_error_and_logs_it_escaped(
    backend, faulty_queue, caplog
):
    task = submit("three-steps", {})
    queue = faulty_queue(claims=[RuntimeError("queue defect\nforged: INFO all is well")], sweeps=[])
    worker = Worker(WorkerOptions.from_settings(burst=True, concurrency=1), queue=queue)
    with caplog.at_level(logging.ERROR, logger="salvador_django"):
        run_in_thread(worker)
    assert Task.objects.using(backend).get(id=task.id).status == TaskStatus.COMPLETED
    [record] = [r for r in caplog.records if "cannot take tasks" in r.getMessage()]
    message = record.getMessage()
    assert "queue defect\\nforged: INFO all is well" in message
    assert "\nforged" not in message
    assert "Traceback (most recent call last)" in message  # unexpected: say where


def test_maintenance_goes_on_after_an_unexpected_error(backend, faulty_queue, caplog):
    queue = faulty_queue(claims=[], sweeps=[ValueError("sweep defect")])
    options = replace(WorkerOptions.from_settings(concurrency=1), sweep_interval=0.05)
    worker = Worker(options, queue=queue)
    runner = threading.Thread(target=worker.run, daemon=True)
    with caplog.at_level(logging.ERROR, logger="salvador_django"):
        runner.start()
        try:
            wait_until(lambda: queue.sweeps >= 3, timeout=15, message="no sweep after the error")
            assert worker._maintenance is not None
            assert worker._maintenance.is_alive()
        finally:
            worker.stop()
            runner.join(30)
    assert any("maintenance failed (sweep defect)" in r.getMessage() for r in caplog.records)


def test_a_burst_whose_queue_stays_unreachable_gives_up(backend, faulty_queue, caplog):
    down = [QueueUnavailable("Redis unavailable while popping: connection refused")] * 1000
    queue = faulty_queue(claims=down, sweeps=[])
    options = replace(WorkerOptions.from_settings(burst=True, concurrency=2), give_up_after=0.5)
    worker = Worker(options, queue=queue)
    with caplog.at_level(logging.ERROR, logger="salvador_django"):
        took = run_in_thread(worker)
    assert took < 10
    assert worker.gave_up is not None
    assert worker.gave_up.startswith("cannot take tasks for ")
    assert "connection refused" in worker.gave_up
    assert sum("giving up" in r.getMessage() for r in caplog.records) == 1


def test_a_burst_does_not_give_up_on_a_short_outage(backend, faulty_queue):
    task = submit("three-steps", {})
    down = [QueueUnavailable("Redis unavailable while popping: connection refused")] * 2
    queue = faulty_queue(claims=down, sweeps=[])
    options = replace(WorkerOptions.from_settings(burst=True, concurrency=1), give_up_after=30)
    worker = Worker(options, queue=queue)
    run_in_thread(worker)
    assert worker.gave_up is None
    assert Task.objects.using(backend).get(id=task.id).status == TaskStatus.COMPLETED


@pytest.mark.only_backend("sqlite")
def test_shutdown_keeps_to_the_grace_period_and_says_what_happens(backend, workflow_names, caplog):
    workflow_names.append("outlives-grace")
    started, release = threading.Event(), threading.Event()

    def slow(task: Task) -> None:
        started.set()
        release.wait(30)

    Workflow("outlives-grace").step("slow", slow)
    submit("outlives-grace", {})
    options = replace(WorkerOptions.from_settings(concurrency=1), grace_period=0.5)
    worker = Worker(options)
    runner = threading.Thread(target=worker.run, daemon=True)
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        runner.start()
        try:
            assert started.wait(15), "the step did not start"
            stopped_at = time.monotonic()
            worker.stop()
            runner.join(10)
            took = time.monotonic() - stopped_at
        finally:
            release.set()  # the abandoned step ends: no thread outlives the test
            for thread in worker._runners:
                thread.join(30)
    assert not runner.is_alive()
    assert took < 0.5 + 2.0  # the grace period, not 5 s more for maintenance
    [warning] = [r.getMessage() for r in caplog.records if "grace period" in r.getMessage()]
    assert "unless a step finishes first, its lease expires and it runs again" in warning


@pytest.mark.only_backend("postgres")
def test_idle_threads_close_their_connections_as_conn_max_age_says(backend):
    concurrency = 6
    connections.settings[backend]["CONN_MAX_AGE"] = 0  # the new threads' connections
    try:
        with connections[backend].cursor() as cursor:

            def open_connections() -> int:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                return int(cursor.fetchone()[0])

            before = open_connections()
            options = WorkerOptions.from_settings(concurrency=concurrency, poll_interval=0.05)
            worker = Worker(options)
            runner = threading.Thread(target=worker.run, daemon=True)
            runner.start()
            try:
                time.sleep(1.0)  # every thread has claimed (and found nothing) by now
                samples = []
                for _ in range(20):
                    samples.append(open_connections() - before)
                    time.sleep(0.05)
            finally:
                worker.stop()
                runner.join(30)
    finally:
        connections.settings[backend]["CONN_MAX_AGE"] = 60
    # Maintenance and the listener keep theirs; an idle runner holds one only briefly.
    assert min(samples) <= 3, samples


@pytest.mark.only_backend("postgres", "mariadb")
def test_a_worker_that_needs_more_connections_than_the_server_allows_is_warned_of(backend, caplog):
    limit = connection_limit(backend)
    assert limit is not None
    assert limit.allowed > 0
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        warn_if_connections_short(backend, limit.allowed, "just enough")
        assert not caplog.records
        warn_if_connections_short(backend, limit.allowed + 1, "13 thread(s), 1 for maintenance")
    [record] = caplog.records
    message = record.getMessage()
    assert f"needs up to {limit.allowed + 1} database connections (13 thread(s)" in message
    assert f"the server allows {limit.allowed} (max_connections" in message


@pytest.mark.only_backend("sqlite")
def test_sqlite_has_no_connection_limit(backend, caplog):
    assert connection_limit(backend) is None
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        warn_if_connections_short(backend, 10_000, "many")
    assert not caplog.records
