"""Real Celery worker processes, on the Redis and the RabbitMQ broker."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from django.db import transaction

from salvador_django import TaskStatus, send_signal, submit
from salvador_django.models import Task, WorkerKind, WorkerProcess
from tests.integration.test_django_tasks import finished
from tests.support.processes import ROOT, kill_group, start_in_group
from tests.support.tasks import expire_lease
from tests.support.waiting import assert_ran_in_order_once, wait_until
from tests.testapp import tasks as django_tasks
from tests.testapp.models import Event

BROKERS = {
    "redis": "redis://127.0.0.1:6379/15",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


@pytest.fixture(params=list(BROKERS))
def broker(request):
    return BROKERS[request.param]


@pytest.fixture
def celery(backend, broker, settings, tmp_path):
    """Start Celery workers (and beat) on a queue of this test; dispatch on."""
    from tests.celery_app import make_app

    queue = f"salvador-test-{uuid.uuid4().hex[:8]}"
    settings.SALVADOR = {**settings.SALVADOR, "DISPATCH": "celery"}
    app = make_app(broker, queue)
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def start(*command: str, lease_seconds: float = 60, **extra: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SALVADOR_TEST_USE_TEST_DATABASES": "1",
            "SALVADOR_TEST_DATABASE": backend,
            "SALVADOR_TEST_DISPATCH": "celery",
            "SALVADOR_TEST_CELERY_BROKER": broker,
            "SALVADOR_TEST_CELERY_QUEUE": queue,
            "SALVADOR_TEST_LEASE_SECONDS": str(lease_seconds),
            "SALVADOR_TEST_CONCURRENCY": "4",
            **extra,
        }
        logs.append(tmp_path / f"celery-{len(processes)}.log")
        with logs[-1].open("wb") as log:
            process = start_in_group(
                [sys.executable, "-m", "celery", "-A", "tests.celery_app", *command],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        return process

    def worker(**kwargs) -> subprocess.Popen[bytes]:
        return start(
            "worker", "--pool", "threads", "--concurrency", "4", "-Q", queue,
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
            **kwargs,
        )  # fmt: skip

    def beat(**kwargs) -> subprocess.Popen[bytes]:
        return start("beat", "-s", str(tmp_path / "beat-schedule"), "-l", "info", **kwargs)

    start.worker = worker
    start.beat = beat
    start.app = app
    start.output = lambda: "\n".join(p.read_text() for p in logs)
    try:
        yield start
    finally:
        try:
            for process in processes:  # a worker's whole group: a prefork pool's children too
                kill_group(process)
        finally:
            with app.connection_for_write() as connection:
                connection.default_channel.queue_purge(queue)
            app.close()


def statuses(backend, tasks):
    return set(
        Task.objects.using(backend)
        .filter(id__in=[t.id for t in tasks])
        .values_list("status", flat=True)
    )


def test_500_dispatched_tasks_run_every_step_once_in_order(backend, celery):
    worker = celery.worker()
    with transaction.atomic(using=backend):
        tasks = [submit("three-steps", {"n": n}) for n in range(500)]
    wait_until(lambda: statuses(backend, tasks) == {TaskStatus.COMPLETED}, timeout=120)
    assert assert_ran_in_order_once(backend, [t.id for t in tasks]) == {worker.pid}
    # The Celery worker that ran them is in the workers table.
    row = WorkerProcess.objects.using(backend).get(pid=worker.pid)
    assert (row.kind, row.queue) == (WorkerKind.CELERY, "celery")


def test_a_killed_celery_worker_loses_nothing(backend, celery):
    first = celery.worker()
    with transaction.atomic(using=backend):
        tasks = [submit("three-steps", {"sleep": {"second": 0.05}}) for _ in range(100)]
    wait_until(lambda: Event.objects.using(backend).filter(step="third").count() >= 10)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    # The killed worker's leases ran out (it was the only worker: every running task is its).
    expire_lease(Task.objects.filter(id__in=[t.id for t in tasks]), backend)
    celery.worker()
    celery.beat()  # its sweep returns the killed worker's tasks: their lease expired
    wait_until(lambda: statuses(backend, tasks) == {TaskStatus.COMPLETED}, timeout=120)
    by_task = defaultdict(list)
    for event in Event.objects.using(backend).order_by("started", "id"):
        by_task[event.task_id].append(event)
    for task in tasks:
        runs = by_task[task.id]
        # In order; only the step running at the kill may have run twice (at least once).
        steps = [step for step, _ in itertools.groupby(e.step for e in runs)]
        assert steps == ["first", "second", "third"], task.id
        assert len(runs) <= 4, task.id
        for before, after in itertools.pairwise(runs):
            # never concurrently with itself: a step starts after the previous one ended,
            # or after the killed worker's attempt (which never finished) was abandoned
            assert before.finished is None or before.finished <= after.started, task.id


def test_the_beat_sweep_runs_tasks_submitted_while_nothing_was_dispatched(
    backend, celery, settings
):
    settings.SALVADOR = {**settings.SALVADOR, "DISPATCH": None}  # no message is sent
    with transaction.atomic(using=backend):
        tasks = [submit("three-steps", {}) for _ in range(20)]
    celery.worker()
    celery.beat()
    wait_until(lambda: statuses(backend, tasks) == {TaskStatus.COMPLETED}, timeout=60)
    assert_ran_in_order_once(backend, [t.id for t in tasks])


def test_a_duplicate_message_is_a_no_op(backend, celery):
    celery.worker()
    task = submit("three-steps", {})
    wait_until(lambda: statuses(backend, [task]) == {TaskStatus.COMPLETED})
    celery.app.send_task("salvador_django.run_task", args=[str(task.id)])
    sentinel = submit("three-steps", {})  # ordered after the duplicate on the queue
    wait_until(lambda: statuses(backend, [sentinel]) == {TaskStatus.COMPLETED})
    assert_ran_in_order_once(backend, [task.id, sentinel.id])


def test_waiting_tasks_sleep_and_wake_on_signals_under_celery(backend, celery):
    celery.worker()
    sleeper = submit("sleeps", {"seconds": 1.5})
    waiter = submit("approval", {})
    wait_until(lambda: statuses(backend, [waiter]) == {TaskStatus.WAITING}, timeout=60)
    send_signal(waiter.id, "approval", "yes")
    done = {TaskStatus.COMPLETED}
    wait_until(lambda: statuses(backend, [sleeper, waiter]) == done, timeout=60)
    naps = Event.objects.using(backend).filter(task_id=sleeper.id, step="nap").order_by("id")
    first, again = naps.values_list("started", flat=True)  # its timer's message ran it again
    assert again - first >= 1.5 - 0.05
    assert Task.objects.using(backend).get(id=waiter.id).state["answer"] == "yes"


def test_a_parent_fans_out_and_resumes_under_celery(backend, celery):
    celery.worker()
    parent = submit("fan-out", {"count": 30})
    wait_until(lambda: statuses(backend, [parent]) == {TaskStatus.COMPLETED}, timeout=90)
    stored = Task.objects.using(backend).get(id=parent.id)
    assert stored.result == sum(n * n for n in range(30))
    children = Task.objects.using(backend).filter(parent_id=parent.id)
    assert set(children.values_list("status", flat=True)) == {TaskStatus.COMPLETED}
    squares = Event.objects.using(backend).filter(task_id__in=children.values("id"), step="square")
    assert squares.count() == 30  # each child ran once: its message was sent on commit


def test_a_graph_task_runs_its_parallel_steps_at_the_same_time_under_celery(backend, celery):
    celery.worker()
    task = submit("diamond", {"sleep": {"b1": 0.5, "b2": 0.5, "b3": 0.5, "b4": 0.5}})
    wait_until(lambda: statuses(backend, [task]) == {TaskStatus.COMPLETED}, timeout=60)
    stored = Task.objects.using(backend).get(id=task.id)
    assert stored.result == {name: {"step": name} for name in ("b1", "b2", "b3", "b4")}
    ran = Event.objects.using(backend).filter(task_id=task.id)
    assert sorted(ran.values_list("step", flat=True)) == sorted(
        ["a", "b1", "b2", "b3", "b4", "join"]
    )
    branches = list(ran.filter(step__startswith="b"))
    assert max(e.started for e in branches) < min(e.finished for e in branches)


def test_the_beat_sweep_ticks_schedules_once_per_tick(backend, celery):
    celery.worker(SALVADOR_TEST_SCHEDULES="1")
    celery.worker(SALVADOR_TEST_SCHEDULES="1")
    celery.beat(SALVADOR_TEST_SCHEDULES="1")
    ticking = Task.objects.using(backend).filter(workflow="ticking", idempotency_key__isnull=False)
    wait_until(lambda: ticking.filter(status=TaskStatus.COMPLETED).count() >= 6, timeout=60)
    for name, seconds in (("ticking-1s", 1.0), ("ticking-cron-2s", 2.0)):
        times = sorted(
            datetime.fromisoformat(meta["scheduled_for"])
            for meta in ticking.filter(idempotency_key__startswith=f"schedule:{name}:").values_list(
                "meta", flat=True
            )
        )
        # Missed ticks run as catch_up="all" says: every one, once.
        assert {(b - a).total_seconds() for a, b in itertools.pairwise(times)} <= {seconds}, (
            name,
            times,
        )


def test_a_django_task_runs_on_a_celery_worker(backend, broker, request, salvador_tasks):
    if (backend, broker) != ("postgres", BROKERS["redis"]):
        pytest.skip("one broker and database suffice: the path is submit()'s, tested above")
    celery = request.getfixturevalue("celery")  # after the skip: no queue made for nothing
    worker = celery.worker(SALVADOR_TEST_TASKS="1")
    result = django_tasks.add.enqueue(40, 2)
    wait_until(lambda: finished(result), timeout=60)
    assert (result.status, result.return_value) == ("SUCCESSFUL", 42)
    assert result.worker_ids[0].endswith(f":{worker.pid}:celery")
