"""``manage.py runworkflows`` as operators run it: real processes, signals and crashes."""

import signal
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from tests.support.tasks import expire_lease
from tests.support.waiting import assert_ran_in_order_once, wait_until
from tests.testapp.models import Event

pytestmark = pytest.mark.slow


def status_of(alias, task):
    return Task.objects.using(alias).get(id=task.id).status


def test_burst_runs_what_is_due_logs_each_transition_and_exits_0(backend, queue_name, start_worker):
    done = submit("three-steps", {})
    broken = submit("breaks-second", {})
    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait() == 0, worker.output()
    assert status_of(backend, done) == TaskStatus.COMPLETED
    assert status_of(backend, broken) == TaskStatus.FAILED
    output = worker.output()
    assert f"(2 thread(s); queue: {queue_name}; database: {backend}; workflows: " in output
    assert f"task {done.id} (three-steps) claimed at step 'first'" in output
    assert f"task {done.id} (three-steps) completed" in output
    assert f"task {broken.id} (breaks-second) failed at step 'second': ValueError" in output


def test_sigterm_finishes_the_running_step_releases_the_task_and_exits_0(
    backend, queue_name, start_worker
):
    task = submit("three-steps", {"sleep": {"second": 1.5}})
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: Event.objects.using(backend).filter(task_id=task.id, step="second").exists())
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    stored = Task.objects.using(backend).get(id=task.id)
    assert (stored.status, stored.step_name, stored.claimed_by) == (
        TaskStatus.PENDING,
        "third",
        None,
    )
    assert Event.objects.using(backend).get(task_id=task.id, step="second").finished is not None
    assert "released at step 'third'" in worker.output()


def test_sigkill_mid_step_replays_only_that_step_after_the_lease(backend, queue_name, start_worker):
    task = submit("three-steps", {"sleep": {"second": 30}})
    first = start_worker("--concurrency", "1", sweep_interval=0.5)
    wait_until(lambda: Event.objects.using(backend).filter(task_id=task.id, step="second").exists())
    first.signal(signal.SIGKILL)
    first.wait()
    # The replay must not sleep 30 s again: the next attempt of "second" is quick.
    Task.objects.using(backend).filter(id=task.id).update(body={"sleep": {}})
    assert expire_lease(task, backend) == 1  # the killed worker's lease ran out
    second = start_worker("--concurrency", "1", sweep_interval=0.5)
    wait_until(lambda: status_of(backend, task) == TaskStatus.COMPLETED, timeout=30)
    steps = list(
        Event.objects.using(backend)
        .filter(task_id=task.id)
        .order_by("id")
        .values_list("step", "pid")
    )
    assert [s for s, _ in steps] == ["first", "second", "second", "third"]
    assert steps[0][1] == steps[1][1] == first.pid
    assert steps[2][1] == steps[3][1] == second.pid
    stored = Task.objects.using(backend).get(id=task.id)
    assert stored.recoveries == 0  # reset by the next checkpoint: the step was not poison
    assert "returned 1 task(s) with an expired lease to pending" in second.output()


def test_two_worker_processes_never_run_one_step_twice_or_concurrently(
    backend, queue_name, start_worker
):
    with transaction.atomic(using=backend):
        tasks = [submit("three-steps", {"sleep": {"second": 0.005}}) for _ in range(200)]
    workers = [start_worker("--concurrency", "2") for _ in range(2)]
    wait_until(
        lambda: Task.objects.using(backend).filter(status=TaskStatus.COMPLETED).count() == 200,
        timeout=60,
    )
    for worker in workers:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    pids = assert_ran_in_order_once(backend, [t.id for t in tasks])
    assert len(pids) == 2  # every process worked


@pytest.mark.only_backend("postgres")
def test_listen_notify_wakes_an_idle_worker_process_at_once(backend, start_worker):
    worker = start_worker("--concurrency", "1", "--poll-interval", "30", SALVADOR_LOG_LEVEL="DEBUG")
    # Its first claim found nothing; waiting, it started the listener, which now listens.
    worker.wait_for_output("listening for task notifications")
    task = submit("three-steps", {})
    started = time.monotonic()
    wait_until(lambda: status_of(backend, task) == TaskStatus.COMPLETED, timeout=10)
    assert time.monotonic() - started < 5  # far below the 30 s poll interval


@pytest.mark.only_backend("postgres", "mariadb")
@pytest.mark.only_queue("redis")
def test_three_processes_of_four_threads_share_2000_tasks_through_redis(
    backend, queue_name, start_worker
):
    with transaction.atomic(using=backend):
        tasks = [submit("three-steps", {}) for _ in range(2000)]
    workers = [start_worker("--concurrency", "4") for _ in range(3)]
    wait_until(
        lambda: Task.objects.using(backend).filter(status=TaskStatus.COMPLETED).count() == 2000,
        timeout=120,
    )
    for worker in workers:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output()
    pids = assert_ran_in_order_once(backend, [t.id for t in tasks])
    assert len(pids) == 3  # every process worked


@pytest.mark.django_db
def test_queue_flag_is_checked_like_the_setting(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with pytest.raises(CommandError, match="which is not in CACHES"):
        call_command("runworkflows", "--queue", "redis", "--burst")
