"""Bad entries in the Redis queue's keys delay or reorder work at most (real Redis).

Whatever is written to the queue's keys (ids that are not UUIDs, bytes that are
not UTF-8, malformed members of a delayed set, ids of another workflow's tasks),
workers keep taking the real tasks, and the junk is dropped and logged.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from django.db import transaction

from salvador_django import TaskStatus, submit
from salvador_django.exceptions import QueueUnavailable
from salvador_django.models import Task
from salvador_django.queues import get_queue
from salvador_django.queues.database import DatabaseQueue
from salvador_django.queues.redis import RedisQueue
from salvador_django.worker import Worker, WorkerOptions
from tests.conftest import delete_keys
from tests.support.servers import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.only_queue("redis")

JUNK = [
    b"not-a-uuid",
    b"\xff\xfe\x00 not utf-8",
    b"line one\nline two: forged log line",
    str(uuid.uuid4()).upper().encode(),  # a UUID, but not as the queue writes one
    f"{{{uuid.uuid4()}}}".encode(),  # a form Python's uuid.UUID accepts
    b"",
    b"x" * 100_000,
]


def redis_queue() -> RedisQueue:
    queue = get_queue()
    assert isinstance(queue, RedisQueue)
    return queue


def junk_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "salvador_django" and r.levelno == logging.WARNING
    ]


def assert_bounded(messages: list[str]) -> None:
    """Each log line is short and on one line, whatever the junk was."""
    assert messages
    for message in messages:
        assert len(message) < 600, message[:600]
        assert "\n" not in message
        assert "forged" not in message or "\\n" in message


def test_junk_in_a_ready_list_is_dropped_and_logged_and_the_task_behind_it_claimed(
    backend, queue_name, caplog
):
    task = submit("three-steps", {})
    queue = redis_queue()
    ready = queue.key("queue", "three-steps", 1)
    queue.client.rpush(ready, *JUNK)  # popped from the right: ahead of the task
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        claimed = queue.claim(["three-steps"], 0, token="t", lease_seconds=60)
    assert [t.id for t in claimed] == [task.id]
    assert queue.client.llen(ready) == 0
    in_flight = queue.client.zrange(queue.key("inflight"), 0, -1)
    assert in_flight == [str(task.id).encode()]  # the junk was never marked in flight
    warnings = junk_warnings(caplog)
    assert len(warnings) == 1
    assert f"dropped {len(JUNK)} " in warnings[0]
    assert_bounded(warnings)


def test_more_junk_than_one_pop_drops_still_reaches_the_task(backend, queue_name, caplog):
    task = submit("three-steps", {})
    queue = redis_queue()
    ready = queue.key("queue", "three-steps", 1)
    queue.client.rpush(ready, *(f"junk-{n}" for n in range(250)))
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        claimed = queue.claim(["three-steps"], 0, token="t", lease_seconds=60)
    assert [t.id for t in claimed] == [task.id]
    assert queue.client.llen(ready) == 0
    warnings = junk_warnings(caplog)
    assert len(warnings) == 1
    assert "dropped 250 " in warnings[0]


def test_junk_in_the_in_flight_set_is_removed_by_the_sweep_which_recovers_the_rest(
    backend, queue_name, settings, caplog
):
    settings.SALVADOR = {**settings.SALVADOR, "LEASE_SECONDS": 1}
    task = submit("three-steps", {})
    queue = redis_queue()
    assert queue._pop_one(["three-steps"])[0] == str(task.id)  # its worker dies here
    inflight = queue.key("inflight")
    queue.client.zadd(inflight, dict.fromkeys([*JUNK, str(uuid.uuid4()).encode()], 0))
    queue.client.zincrby(inflight, -1.1, str(task.id))  # popped longer than a lease ago
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        assert queue._recover_inflight() == 1
    assert queue.client.zcard(inflight) == 0
    assert_bounded(junk_warnings(caplog))
    assert queue._pop_one(["three-steps"])[0] == str(task.id)


def test_a_flood_of_junk_in_flight_does_not_hide_the_ids_behind_it(backend, queue_name, settings):
    settings.SALVADOR = {**settings.SALVADOR, "LEASE_SECONDS": 1}
    task = submit("three-steps", {})
    queue = redis_queue()
    assert queue._pop_one(["three-steps"])[0] == str(task.id)
    inflight = queue.key("inflight")
    queue.client.zadd(inflight, {f"junk-{n}": 0 for n in range(2500)})  # older than the id
    queue.client.zincrby(inflight, -1.1, str(task.id))
    assert queue._recover_inflight() == 1  # pages of 1,000: the id is in the third
    assert queue.client.zcard(inflight) == 0


def test_bytes_that_are_not_utf8_in_a_bell_are_ignored_and_logged(backend, queue_name, caplog):
    queue = redis_queue()
    bell = queue.key("bell", "three-steps")
    queue.client.lpush(bell, b"\xff\xfe\x00", b"not-a-uuid", b"y" * 10_000)
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        assert queue.claim(["three-steps"], 0.3, token="t", lease_seconds=60) == []
    assert queue.client.llen(bell) == 0
    assert len(junk_warnings(caplog)) == 3
    assert_bounded(junk_warnings(caplog))
    task = submit("three-steps", {})
    assert [t.id for t in queue.claim(["three-steps"], 1, token="t", lease_seconds=60)] == [task.id]


def test_a_malformed_member_of_a_delayed_set_is_dropped_and_pops_go_on(backend, queue_name, caplog):
    queue = redis_queue()
    delayed = queue.key("delayed", "three-steps")
    malformed = [
        *JUNK,
        f"9:{uuid.uuid4()}".encode(),  # no such band
        f"1:{uuid.uuid4()}x".encode(),
        b"1:",
        b"1",
        b"\xff:\xff",
    ]
    queue.client.zadd(delayed, dict.fromkeys(malformed, 0))
    task = submit("three-steps", {})
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        claimed = queue.claim(["three-steps"], 0, token="t", lease_seconds=60)
    assert [t.id for t in claimed] == [task.id]
    assert queue.client.zcard(delayed) == 0
    warnings = junk_warnings(caplog)
    assert len(warnings) == 1
    assert f"dropped {len(malformed)} " in warnings[0]
    assert_bounded(warnings)
    later = submit("three-steps", {})  # and the next pop works too
    assert [t.id for t in queue.claim(["three-steps"], 0, token="u", lease_seconds=60)] == [
        later.id
    ]


def test_an_id_of_another_workflow_is_left_to_that_workflows_workers(backend, queue_name):
    other = submit("breaks-second", {})
    queue = redis_queue()
    delete_keys(queue.prefix)  # only the wrong list names it
    queue.client.lpush(queue.key("queue", "three-steps", 1), str(other.id))
    queue.client.lpush(queue.key("bell", "three-steps"), str(other.id))
    assert queue.claim(["three-steps"], 0.3, token="t", lease_seconds=60) == []
    assert Task.objects.using(backend).get(id=other.id).status == TaskStatus.PENDING
    # Not lost: moved to its own workflow's list, where its workers find it.
    assert queue.depth("breaks-second")["normal"] == 1
    assert [t.id for t in queue.claim(["breaks-second"], 0, token="u", lease_seconds=60)] == [
        other.id
    ]


def test_claim_ids_takes_only_served_workflows_and_skips_what_is_not_a_uuid(backend, queue_name):
    mine, other = submit("three-steps", {}), submit("breaks-second", {})
    ids = ["not-a-uuid", "", str(uuid.uuid4()).upper() + "x", str(other.id), str(mine.id)]
    claimed = Task.objects.using(backend).claim_ids(ids, "t", 60, workflows=["three-steps"])
    assert [t.id for t in claimed] == [mine.id]
    assert Task.objects.using(backend).claim_ids(["junk"], "t", 60, workflows=["x"]) == []
    assert Task.objects.using(backend).claim_ids([other.id], "t", 60, workflows=[]) == []


def test_a_burst_worker_runs_every_task_past_junk_in_every_key(backend, queue_name):
    with transaction.atomic(using=backend):
        tasks = [submit("three-steps", {"n": n}, priority=p) for n, p in enumerate((1, 0, -1))]
    other = submit("breaks-second", {})
    queue = redis_queue()
    for band in range(3):
        queue.client.rpush(queue.key("queue", "three-steps", band), *JUNK, str(other.id))
    queue.client.zadd(queue.key("delayed", "three-steps"), dict.fromkeys(JUNK, 0))
    queue.client.lpush(queue.key("bell", "three-steps"), *JUNK)
    queue.client.zadd(queue.key("inflight"), dict.fromkeys(JUNK, 0))
    queue.client.sadd(queue.key("entries"), *JUNK)
    Worker(WorkerOptions.from_settings(workflows=["three-steps"], burst=True)).run()
    for task in tasks:
        task.refresh_from_db()
        assert task.status == TaskStatus.COMPLETED
    other.refresh_from_db()
    assert other.status == TaskStatus.PENDING  # not this worker's workflow
    assert queue.client.zcard(queue.key("inflight")) <= len(tasks)  # the junk is gone


def test_came_back_is_true_once_after_redis_returns(backend, queue_name, tmp_path, settings):
    server = RedisServer(tmp_path)
    server.start()
    settings.CACHES = {
        **settings.CACHES,
        "redis": {**settings.CACHES["redis"], "LOCATION": server.url},
    }
    try:
        queue = redis_queue()
        assert queue.depth("three-steps")["normal"] == 0
        assert queue.came_back() is False
        server.stop()
        with pytest.raises(QueueUnavailable):
            queue.depth("three-steps")
        assert queue.came_back() is False  # still down
        server.start()
        wait_until(lambda: _reachable(queue), timeout=10)
        assert queue.came_back() is True
        assert queue.came_back() is False  # once
        queue.depth("three-steps")
        assert queue.came_back() is False
    finally:
        server.stop()


def _reachable(queue: RedisQueue) -> bool:
    try:
        queue.depth("three-steps")
    except QueueUnavailable:
        return False
    return True


def test_a_queue_without_outages_never_comes_back(backend):
    assert DatabaseQueue(backend).came_back() is False
