"""The Redis queue's recovery of lost entries, run by the sweep (``RedisQueue.reannounce``).

Two ways an entry goes missing (keys as in :mod:`salvador_django.queues.redis_scripts`):

- its id was popped into ``inflight`` and the popping worker died before claiming it;
- Redis lost it (flushed, restarted without persistence): the due task is pending in
  the database, but no id in ``entries`` says so.

A member of ``inflight`` that is not a task id (anyone who can write to Redis can put
anything there) is removed and logged; it never reaches the database.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from salvador_django.models import Task
from salvador_django.queues.base import Entry
from salvador_django.queues.redis_scripts import describe, is_task_id
from salvador_django.status import TaskStatus

if TYPE_CHECKING:
    from salvador_django.queues.redis import RedisQueue

logger = logging.getLogger("salvador_django")

SWEEP_ROWS = 1000
SWEEP_PAGES = 20


def recover_inflight(queue: RedisQueue) -> int:
    """Push again the pending tasks whose ids stayed in flight longer than a lease.

    The oldest first, in pages of ``SWEEP_ROWS``, at most ``SWEEP_PAGES`` per sweep.
    """
    # In-flight marks are scored with Redis' clock (the pop script's TIME): so is
    # their age. This worker's clock may be minutes off.
    seconds, microseconds = queue._call("sweeping", queue.client.time)
    cutoff = seconds + microseconds / 1_000_000 - queue.stale_after
    page = partial(
        queue.client.zrangebyscore, queue.key("inflight"), "-inf", cutoff, start=0, num=SWEEP_ROWS
    )
    recovered = 0
    for _ in range(SWEEP_PAGES):
        stale = queue._call("sweeping", page)
        recovered += _recover(queue, stale)
        if len(stale) < SWEEP_ROWS:
            break
    return recovered


def _recover(queue: RedisQueue, stale: list[bytes]) -> int:
    """Take ``stale`` out of flight, pushing again those whose task is pending."""
    junk = [member for member in stale if not is_task_id(member)]
    if junk:  # written by someone else: a pop marks nothing but task ids
        queue._call("sweeping", lambda: queue.client.zrem(queue.key("inflight"), *junk))
        logger.warning(
            "salvador: removed %d member(s) of the Redis queue's in-flight set that are not "
            "task ids, such as %s",
            len(junk),
            describe(junk[0]),
        )
    ids = [member.decode() for member in stale if is_task_id(member)]
    if not ids:
        return 0
    # Read the database first: if it fails, the ids stay in flight for the next sweep.
    pending = list(Task.objects.using(queue.database).filter(id__in=ids, status=TaskStatus.PENDING))
    queue._call("sweeping", lambda: queue.client.zrem(queue.key("inflight"), *ids))
    queue._call("sweeping", lambda: queue.client.srem(queue.key("entries"), *ids))
    entries = [Entry.of(task) for task in pending]  # due now: a late claim re-schedules
    queue.push(entries)
    return len(entries)


def announce_missing(queue: RedisQueue, workflows: Sequence[str] | None) -> int:
    """Push due tasks, in the order workers take them, that no entry carries.

    Pages of the due backlog are checked from its head until one is fully
    carried (usually the first): a lost entry further back reaches the head before
    its task could have run anyway. At most ``SWEEP_PAGES`` pages per sweep.
    """
    due = (
        Task.objects.using(queue.database).due(workflows).values_list("id", "workflow", "priority")
    )
    announced = 0
    for page in range(SWEEP_PAGES):
        rows = list(due[page * SWEEP_ROWS : (page + 1) * SWEEP_ROWS])
        if not rows:
            break
        ids = [str(row[0]) for row in rows]
        carried = queue._call(
            "sweeping", partial(queue.client.smismember, queue.key("entries"), ids)
        )
        missing = [
            Entry(task_id, workflow, priority, None)
            for (task_id, workflow, priority), yes in zip(rows, carried, strict=True)
            if not yes
        ]
        queue.push(missing)
        announced += len(missing)
        if not missing or len(rows) < SWEEP_ROWS:
            break
    return announced
