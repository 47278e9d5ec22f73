"""Bad entries in the Redis queue's keys delay or reorder work at most (real Redis).

Whatever is written to the queue's keys (ids that are not UUIDs, bytes that are
not UTF-8, malformed members of a delayed set, ids of another workflow's tasks),
workers keep taking the real tasks, and the junk is dropped and logged.
"""

from __future__ import annotations

import uuid

import pytest

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from salvador_django.queues import get_queue
from salvador_django.queues.redis import RedisQueue
from tests.conftest import delete_keys

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
