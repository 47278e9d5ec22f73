"""The Redis queue: keys, priorities, delays, recovery, and Redis loss (real Redis)."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
import redis
from django.db import connections, transaction
from django_redis import get_redis_connection

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from salvador_django.queues import Entry, get_queue
from salvador_django.queues.redis import RedisQueue
from salvador_django.worker import Worker, WorkerOptions
from tests.conftest import delete_keys
from tests.support.servers import RedisServer
from tests.support.waiting import run_in_threads, running_worker, wait_until
from tests.testapp.models import Event

pytestmark = pytest.mark.only_queue("redis")


def entry(workflow="three-steps", priority=0):
    return Entry(uuid.uuid4(), workflow, priority, None)


def pop_id(queue, workflows=("three-steps",)):
    task_id, _ = queue._pop_one(list(workflows))
    return task_id


def test_keys_live_under_the_prefix_and_depth_is_readable(backend, queue_name, settings):
    queue = get_queue()
    assert isinstance(queue, RedisQueue)
    queue.push([entry(), entry(priority=5), entry(priority=-1)])
    assert queue.depth("three-steps") == {"high": 1, "normal": 1, "low": 1, "delayed": 0}
    prefix = settings.SALVADOR["KEY_PREFIX"]
    keys = {k.decode() for k in get_redis_connection("redis").scan_iter(match=f"{prefix}*")}
    assert keys == {f"{prefix}entries", f"{prefix}bell:three-steps"} | {
        f"{prefix}queue:three-steps:{band}" for band in range(3)
    }


def test_pushing_an_entry_twice_queues_it_once(backend, queue_name):
    queue = get_queue()
    twice = entry()
    queue.push([twice])
    queue.push([twice])
    assert queue.depth("three-steps")["normal"] == 1


def test_bands_pop_in_priority_order_and_fifo_within_a_band(backend, queue_name):
    queue = get_queue()
    low, first, second, high = entry(priority=-3), entry(), entry(), entry(priority=2)
    queue.push([low, first, second, high])
    popped = [pop_id(queue) for _ in range(5)]
    assert popped == [
        str(high.task_id),
        str(first.task_id),
        str(second.task_id),
        str(low.task_id),
        None,
    ]


def test_one_thread_serves_several_workflows_without_starving_any(backend, queue_name):
    queue = get_queue()
    queue.push(
        [entry("three-steps") for _ in range(10)] + [entry("breaks-second") for _ in range(10)]
    )
    for _ in range(10):
        pop_id(queue, ["three-steps", "breaks-second"])
    # The first workflow named does not go first every time: both were served equally.
    assert queue.depth("three-steps")["normal"] == 5
    assert queue.depth("breaks-second")["normal"] == 5


def test_a_rolled_back_submit_leaves_no_entry(backend, queue_name):
    def failing_transaction():
        with transaction.atomic(using=backend):
            submit("three-steps", {})
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        failing_transaction()
    assert get_queue().depth("three-steps") == {"high": 0, "normal": 0, "low": 0, "delayed": 0}


def test_a_task_popped_by_a_worker_that_died_before_claiming_is_recovered(backend, queue_name):
    task = submit("three-steps", {})
    queue = get_queue()
    assert pop_id(queue) == str(task.id)  # the worker dies here, before its claim
    assert queue.reannounce() == 1  # due, pending, and no entry carries it
    assert pop_id(queue) == str(task.id)


def test_ids_left_in_flight_longer_than_a_lease_are_pushed_again(backend, queue_name, settings):
    settings.SALVADOR = {**settings.SALVADOR, "LEASE_SECONDS": 1}
    task = submit("three-steps", {})
    queue = get_queue()
    assert pop_id(queue) == str(task.id)
    assert queue._recover_inflight() == 0  # too recent to tell from a worker about to claim
    # In flight for longer than the lease: its mark is scored 1.1 s earlier (Redis' clock).
    queue.client.zincrby(queue.key("inflight"), -1.1, str(task.id))
    assert queue._recover_inflight() == 1
    assert queue.client.zcard(queue.key("inflight")) == 0
    assert pop_id(queue) == str(task.id)


def test_the_sweep_announces_due_tasks_that_no_entry_carries(backend, queue_name):
    tasks = [submit("three-steps", {}) for _ in range(3)]
    queue = get_queue()
    delete_keys(queue.prefix)  # this test's keys only: the shared Redis stays untouched
    assert queue.reannounce() == 3
    assert queue.reannounce() == 0  # carried now
    assert {pop_id(queue) for _ in range(3)} == {str(t.id) for t in tasks}


def test_a_duplicate_entry_claims_nothing(backend, queue_name):
    task = submit("three-steps", {})
    queue = get_queue()
    queue.client.lpush(queue.key("queue", "three-steps", 1), str(task.id))  # a stray duplicate
    first = queue.claim(["three-steps"], 0, token="a", lease_seconds=60)
    second = queue.claim(["three-steps"], 0, token="b", lease_seconds=60)
    assert [t.id for t in first] == [task.id]
    assert second == []


def test_delayed_tasks_start_no_earlier_than_run_after_and_within_a_second(
    backend, queue_name, settings
):
    settings.SALVADOR = {**settings.SALVADOR, "POLL_INTERVAL": 1.0}
    with running_worker(concurrency=2):
        tasks = [submit("three-steps", {}, delay=delay) for delay in (0.5, 1.2, 2.0)]
        wait_until(lambda: completed(backend) == 3, timeout=10)
    for task in tasks:
        task.refresh_from_db()
        first = Event.objects.using(backend).get(task_id=task.id, step="first")
        late = first.started - task.run_after.timestamp()
        assert 0 <= late <= 1.0, late


@pytest.fixture
def private_redis(tmp_path, settings):
    """A redis-server of this test's own, which it may flush, stop and restart."""
    server = RedisServer(tmp_path)
    server.start()
    settings.CACHES = {
        **settings.CACHES,
        "redis": {**settings.CACHES["redis"], "LOCATION": server.url},
    }
    yield server
    server.stop()


def run_worker_until(backend, done, *, concurrency=4, timeout=60):
    with running_worker(concurrency=concurrency):
        wait_until(done, timeout=timeout, interval=0.05)


def completed(backend):
    return Task.objects.using(backend).filter(status=TaskStatus.COMPLETED).count()


def test_flushall_in_the_middle_of_1000_tasks_loses_none(
    backend, queue_name, private_redis, settings
):
    settings.SALVADOR = {**settings.SALVADOR, "SWEEP_INTERVAL": 0.5}
    with transaction.atomic(using=backend):
        for n in range(1000):
            submit("three-steps", {"n": n})
    flushed = []

    def flush_midway():
        if not flushed and completed(backend) >= 100:
            get_redis_connection("redis").flushall()
            flushed.append(completed(backend))
        return completed(backend) == 1000

    run_worker_until(backend, flush_midway, timeout=120)
    assert flushed
    assert flushed[0] < 1000
    assert Event.objects.using(backend).filter(step="third").count() == 1000


def test_redis_stopped_for_5_seconds_mid_run_loses_nothing(
    backend, queue_name, private_redis, settings, caplog
):
    settings.SALVADOR = {**settings.SALVADOR, "SWEEP_INTERVAL": 0.5}
    with transaction.atomic(using=backend):
        for n in range(300):
            submit("three-steps", {"n": n})
    outage = []

    def stop_midway():
        if not outage and completed(backend) >= 50:
            private_redis.stop()
            with caplog.at_level(logging.ERROR, logger="salvador_django"):
                for n in range(20):  # submitted while Redis is down: committed, announced later
                    submit("three-steps", {"during": n})
            time.sleep(5)
            private_redis.start()
            outage.append(True)
        return completed(backend) == 320

    run_worker_until(backend, stop_midway, timeout=120)
    assert Task.objects.using(backend).count() == 320
    # The queue says so once, not once per task or per thread (the worker threads
    # log their own back-off lines).
    unavailable = [
        r for r in caplog.records if r.getMessage().startswith("salvador: Redis unavailable (")
    ]
    assert len(unavailable) == 1


def test_a_task_popped_before_it_is_due_goes_back_to_the_delayed_set(backend, queue_name):
    task = submit("three-steps", {}, delay=3600)
    queue = get_queue()
    assert queue.depth("three-steps")["delayed"] == 1
    queue.client.lpush(queue.key("queue", "three-steps", 1), str(task.id))  # due too early
    queue.client.zrem(queue.key("delayed", "three-steps"), f"1:{task.id}")
    assert queue.depth("three-steps")["delayed"] == 0
    assert queue.claim(["three-steps"], 0, token="t", lease_seconds=60) == []
    depth = queue.depth("three-steps")
    assert (depth["normal"], depth["delayed"]) == (0, 1)
    score = queue.client.zscore(queue.key("delayed", "three-steps"), f"1:{task.id}")
    assert abs(score - task.run_after.timestamp()) < 0.01
    assert Task.objects.using(backend).get(id=task.id).status == TaskStatus.PENDING


def test_requeueing_a_task_cancelled_while_delayed_makes_it_due_now(backend, queue_name):
    task = submit("three-steps", {}, delay=3600)
    task.cancel()
    task.requeue()
    queue = get_queue()
    assert queue.depth("three-steps")["delayed"] == 0
    assert [t.id for t in queue.claim(["three-steps"], 0, token="t", lease_seconds=60)] == [task.id]


def test_burst_looks_past_stale_entries(backend, queue_name):
    stale = submit("three-steps", {})
    stale.cancel()  # its entry stays in Redis
    due = submit("three-steps", {})
    Worker(WorkerOptions.from_settings(burst=True)).run()
    due.refresh_from_db()
    assert due.status == TaskStatus.COMPLETED


def test_the_sweep_recovers_a_flushed_backlog_past_its_first_page(backend, queue_name):
    with transaction.atomic(using=backend):
        for _ in range(2500):
            submit("three-steps", {})
        submit("breaks-second", {})
    queue = get_queue()
    delete_keys(queue.prefix)  # this test's keys only: the shared Redis stays untouched
    assert queue.reannounce(["three-steps"]) == 2500  # other workflows are other workers' concern
    assert queue.depth("three-steps")["normal"] == 2500
    assert queue.depth("breaks-second")["normal"] == 0


def test_a_waiting_pop_claims_the_task_its_bell_names_then_tidies_its_entry(
    backend, queue_name, monkeypatch
):
    queue = get_queue()
    submitted = []
    waiting = threading.Event()
    blpop = queue.client.blpop

    def waiting_blpop(*args, **kwargs):
        waiting.set()  # the claim found nothing and now waits on the bells
        return blpop(*args, **kwargs)

    monkeypatch.setattr(queue.client, "blpop", waiting_blpop)

    def submit_later():
        assert waiting.wait(timeout=10)
        submitted.append(submit("three-steps", {}))
        connections.close_all()

    submitter = threading.Thread(target=submit_later)
    submitter.start()
    claimed = queue.claim(["three-steps"], 5, token="t", lease_seconds=60)
    submitter.join()
    assert waiting.is_set()
    assert [t.id for t in claimed] == [submitted[0].id]
    assert queue.depth("three-steps")["normal"] == 1  # still listed: a crash here loses nothing
    assert pop_id(queue) is None  # this thread's next pop removes the entry
    assert queue.depth("three-steps")["normal"] == 0
    assert not queue.client.sismember(queue.key("entries"), str(submitted[0].id))


def test_threads_that_connect_at_the_same_time_all_find_the_scripts(
    backend, queue_name, monkeypatch
):
    register = redis.Redis.register_script

    def slow_register(client, source):
        time.sleep(0.05)  # widens the moment between connecting and registering
        return register(client, source)

    monkeypatch.setattr(redis.Redis, "register_script", slow_register)
    queue = get_queue()

    def pop_in_turn(number):
        time.sleep(0.02 * number)  # the others come while the first registers the scripts
        return pop_id(queue)

    assert run_in_threads(pop_in_turn, 8) == [None] * 8


def test_tasks_submitted_while_redis_was_down_run_as_soon_as_it_is_back(
    backend, queue_name, private_redis, settings
):
    """The worker sweeps when Redis comes back, not at the next SWEEP_INTERVAL."""
    settings.SALVADOR = {**settings.SALVADOR, "SWEEP_INTERVAL": 300}
    with running_worker(concurrency=2):
        time.sleep(0.5)  # the first sweep is done: the next would be 300 s away
        private_redis.stop()
        task = submit("three-steps", {})  # its announcement fails: only the row holds it
        time.sleep(1.5)  # the runners find Redis down
        private_redis.start()
        wait_until(
            lambda: Task.objects.using(backend).get(id=task.id).status == TaskStatus.COMPLETED,
            timeout=20,
        )
