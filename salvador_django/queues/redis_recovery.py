"""The Redis queue's recovery of lost entries, run by the sweep (``RedisQueue.reannounce``).

Two ways an entry goes missing (keys as in :mod:`salvador_django.queues.redis_scripts`):

- its id was popped into ``inflight`` and the popping worker died before claiming it;
- Redis lost it (flushed, restarted without persistence): the due task is pending in
  the database, but no id in ``entries`` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from salvador_django.models import Task
from salvador_django.queues.base import Entry
from salvador_django.status import TaskStatus

if TYPE_CHECKING:
    from salvador_django.queues.redis import RedisQueue

SWEEP_ROWS = 1000
SWEEP_PAGES = 20


def recover_inflight(queue: RedisQueue) -> int:
    """Push again the pending tasks whose ids stayed in flight longer than a lease."""
    # In-flight marks are scored with Redis' clock (the pop script's TIME): so is
    # their age. This worker's clock may be minutes off.
    seconds, microseconds = queue._call("sweeping", queue.client.time)
    cutoff = seconds + microseconds / 1_000_000 - queue.stale_after
    stale = queue._call(
        "sweeping", lambda: queue.client.zrangebyscore(queue.key("inflight"), "-inf", cutoff)
    )
    if not stale:
        return 0
    ids = [s.decode() for s in stale]
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
