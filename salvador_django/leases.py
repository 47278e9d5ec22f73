"""Leases: a worker's claim on a task, kept alive by heartbeats, taken back by the reaper.

Every process that runs tasks (the thread worker, a process pool's children, a Celery
worker) holds its claims as :class:`Lease` objects, renews them with
:func:`renew_leases`, and names itself and its claims with :func:`worker_name` and
:func:`new_token`. The reaper (:func:`reap_expired_leases`) returns tasks whose lease
expired to ``pending``, and fails as poison those that keep losing it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction

from salvador_django import dialect, transitions
from salvador_django.models import Task
from salvador_django.queues import Queue, announce_on_commit

if TYPE_CHECKING:
    from salvador_django.definitions import Step, Workflow
    from salvador_django.engine.waits import StepWaits

logger = logging.getLogger("salvador_django")

_REAP_BATCH = 1000


def worker_name(role: str = "") -> str:
    """This process's name in the records: ``host:pid``, with ``:role`` if given."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}:{role}" if role else name


def new_token(prefix: str) -> str:
    """A fresh claim token under ``prefix`` (a worker's name and slot)."""
    return f"{prefix}:{uuid.uuid4().hex[:12]}"


@dataclass
class Attempt:
    """One attempt of one step of a claimed task: what the engine passes around.

    A watchdog (a worker's maintenance thread, a process pool's supervisor) reads it
    to time the attempt out.
    """

    task: Task
    lease: Lease
    workflow: Workflow
    index: int
    step: Step
    number: int
    started: datetime
    #: ``time.monotonic()`` when the step began, and by when it should have returned.
    began: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    #: What the step waited for, took and published in this attempt.
    waits: StepWaits | None = None
    #: Its OpenTelemetry span, while it runs (None when tracing is off).
    span: Any = None


@dataclass
class Lease:
    """A worker's claim on one task: its fencing token and whether it was lost."""

    task_id: Any
    token: str
    #: The lease's length, when something renews it (a heartbeat); None: never checked.
    seconds: float | None = None
    lost: threading.Event = field(default_factory=threading.Event)
    #: The attempt running now, when its step has a timeout.
    attempt: Attempt | None = None
    #: ``time.monotonic()`` when the claim was last known held (taken or renewed).
    renewed_at: float = field(default_factory=time.monotonic)
    #: The task it holds, as its worker runs it (its workflow and step, to show).
    task: Any = None

    def overdue(self, fraction: float = 1.0) -> bool:
        """Whether ``fraction`` of the lease has passed since it was last renewed."""
        return (
            self.seconds is not None
            and time.monotonic() - self.renewed_at > self.seconds * fraction
        )


class Leases:
    """The leases this process holds, shared by its runner threads and the heartbeat."""

    def __init__(self) -> None:
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases[lease.token] = lease

    def remove(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(lease.token, None)

    def snapshot(self) -> list[Lease]:
        with self._lock:
            return list(self._leases.values())


def renew_leases(database: str, leases: Sequence[Lease]) -> None:
    """Extend each lease by its length; flag those whose claim is gone as lost.

    The heartbeat of a worker (all its leases) and of a Celery task (one) both call
    this. Raises the database's error when it cannot reach the database.

    The rows are found by their ids, the tokens fence them: on MySQL and MariaDB an
    update found through a secondary index locks its entries before the rows, and
    one that read every running task's would deadlock with a step ending (whose
    update locks its row, then its entries), and wait for each atomic step's row.
    """
    by_length: dict[float, list[Lease]] = {}  # one length, in practice
    for lease in leases:
        if lease.seconds is not None:
            by_length.setdefault(lease.seconds, []).append(lease)
    renewing = [lease for same in by_length.values() for lease in same]
    if not renewing:
        return
    sent = time.monotonic()  # the renewed leases run from no earlier than this
    tasks = Task.objects.using(database).all()

    def renew(same: list[Lease], seconds: float) -> int:
        where = {"id__in": [lease.task_id for lease in same]}
        token = [lease.token for lease in same]
        return transitions.RENEW.apply(tasks, token=token, where=where, lease_seconds=seconds)

    renewed = dialect.retry_lock_conflicts(
        database, lambda: sum(renew(same, seconds) for seconds, same in by_length.items())
    )
    held: set[str | None] = {lease.token for lease in renewing}
    if renewed < len(renewing):  # some claim is gone: find which
        rows = transitions.RENEW.rows(
            tasks,
            token=[lease.token for lease in renewing],
            where={"id__in": [lease.task_id for lease in renewing]},
        )
        held = set(rows.values_list("claimed_by", flat=True))
    for lease in leases:
        if lease.seconds is None:
            continue
        if lease.token in held:
            lease.renewed_at = max(lease.renewed_at, sent)
        else:
            lease.lost.set()


def reap_expired_leases(database: str, max_recoveries: int, queue: Queue | None = None) -> int:
    """Return tasks whose lease expired to ``pending`` at their step; fail poison tasks.

    A task whose lease expired ``max_recoveries`` times is failed instead: its step
    keeps killing or stalling its workers. Returns how many tasks were returned.

    Where the database can, rows locked by another transaction are skipped until a
    later sweep: a worker paused inside an atomic step's transaction holds its task's
    row, and waiting for it would stall this sweep (and the heartbeats that follow
    it) for as long as the pause lasts.
    """
    tasks = Task.objects.using(database)
    locking = connections[database].features.has_select_for_update_skip_locked
    reaped = poisoned = 0

    def reap_batch() -> tuple[int, int, int]:
        """One batch in one transaction: how many were read, returned and failed."""
        returned = failed = 0
        with transaction.atomic(using=database) if locking else nullcontext():
            expired = tasks.expired_leases()
            if locking:
                expired = expired.select_for_update(skip_locked=True)
            batch = list(expired.values_list("id", "recoveries")[:_REAP_BATCH])
            poison = [i for i, recoveries in batch if recoveries >= max_recoveries - 1]
            spared = [i for i, recoveries in batch if recoveries < max_recoveries - 1]
            # Rows this transaction locked are still expired: they are moved by id
            # alone, so MySQL finds them by the primary key (an update found through
            # the lease index locks its entries first, and deadlocks with a step's end).
            # Unlocked (SQLite), the move checks the expiry again.
            still = tasks.all() if locking else tasks.expired_leases()
            if poison:
                failed = transitions.POISON.apply(
                    still.filter(id__in=poison), max_recoveries=max_recoveries
                )
            if spared:
                returned = transitions.REAP.apply(still.filter(id__in=spared))
                pending = tasks.filter(id__in=spared, status=transitions.PENDING)
                announce_on_commit(*pending, queue=queue)
        return len(batch), returned, failed

    while True:
        # A deadlock with another worker's writes (MySQL) rolls the batch back: again.
        read, returned, failed = dialect.retry_lock_conflicts(database, reap_batch)
        reaped, poisoned = reaped + returned, poisoned + failed
        if read < _REAP_BATCH:
            break
    if poisoned:
        logger.warning(
            "salvador: failed %d poison task(s) after %d lease expiries", poisoned, max_recoveries
        )
    if reaped:
        logger.warning("salvador: returned %d task(s) with an expired lease to pending", reaped)
    return reaped
