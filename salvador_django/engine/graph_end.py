"""How a graph task's run ends, once no step of it runs any more.

It completes, fails (naming every step that failed for good, compensating first),
is cancelled, pauses, is released, waits (for the soonest of its steps' waits), or
is pending again until a step's next attempt.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import DatabaseError
from django.utils import timezone

import salvador_django.engine.observe as observe
from salvador_django import transitions
from salvador_django.engine.blocked import Blocked
from salvador_django.engine.failures import cancel, fail
from salvador_django.engine.outcome import CheckpointFailed, Outcome, lost
from salvador_django.engine.suspension import wait
from salvador_django.exceptions import StepsFailed
from salvador_django.leases import Attempt
from salvador_django.models import Signal, Task, Wait
from salvador_django.status import TaskStatus, WaitKind

if TYPE_CHECKING:
    from salvador_django.engine.graph import GraphRun

logger = logging.getLogger("salvador_django")


def end(self: GraphRun) -> Outcome:
    """No branch runs any more: the task moves as what happened says."""
    try:
        return _end(self)
    finally:
        for attempt in self.made:  # the spans of those that ended with nothing recorded
            observe.interrupted(attempt)


def _end(self: GraphRun) -> Outcome:
    task, lease, engine = self.task, self.lease, self.engine
    task.step, task.attempt = len(self.done), 0
    task.progress = self._progress(self.done, self.skipped)
    if self.stop == "lost":
        return lost(task)
    if self.stop == "crash":
        assert self.crash is not None
        raise self.crash
    if self.failed:
        task.step_name = self.failed[0]
        exc = StepsFailed(self._error())
        cancelled = engine.writes.cancel_requested(task)
        return fail(engine, task, lease, exc, None, workflow=self.workflow, cancelled=cancelled)
    if self.stop == "cancel":
        return cancel(engine, task, lease, self.workflow)
    if self.stop == "pause":
        paused = engine.pause(task, lease, self.workflow)
        if paused is not None:
            return paused
        self.stop = None
        return self.run()  # the pause was withdrawn meanwhile: go on
    if self.stop == "release":
        return engine.release(task, lease)
    if self.blocked:
        return _wait(self)
    if self.retry_at:
        return _retry_later(self)
    if len(set(self.done)) == len(self.graph.names):
        task.status = TaskStatus.COMPLETED
        logger.info("salvador: task %s (%s) completed", task.id, task.workflow)
        return Outcome.COMPLETED
    raise AssertionError(f"graph task {task.id}: no step ran and none is left to run")


def _wait(self: GraphRun) -> Outcome:
    """Every running step stopped and some wait: the task waits for one of them.

    A wait for children first (its children are written, and start), else the
    soonest timer, else the first step's in definition order. A signal another step
    waits for wakes the task too. The others run again when it wakes (what they did
    is not written: they do it again), and wait again if they must.
    """

    def soonest(item: tuple[str, tuple[Attempt, Blocked]]) -> tuple[int, float, int]:
        attempt, blocked = item[1]
        if blocked.kind == WaitKind.CHILDREN:  # first: its children start now
            return (0, 0.0, attempt.index)
        if blocked.until is not None:
            return (1, blocked.until.timestamp() - time.time(), attempt.index)
        if blocked.seconds is not None:
            return (1, blocked.seconds, attempt.index)
        return (2, 0.0, attempt.index)

    name, (attempt, blocked) = min(self.blocked.items(), key=soonest)
    others = [
        (a, b) for n, (a, b) in self.blocked.items() if n != name and b.kind == WaitKind.SIGNAL
    ]
    try:
        _record_signal_waits(self, others)
    except DatabaseError as exc:
        raise CheckpointFailed from exc
    self.task.step_name = name
    outcome = wait(self.engine, attempt, blocked)
    for other, _ in self.blocked.values():
        observe.interrupted(other, observe.WAITING)  # recorded, or run again on waking
    view = attempt.task
    self.task.status, self.task.waiting_for = view.status, view.waiting_for
    self.task.wake_at = view.wake_at
    if outcome == Outcome.WAITING and others and _woken_by_a_signal_sent(self, others):
        self.task.status = TaskStatus.PENDING
        return Outcome.RELEASED
    return outcome


def _record_signal_waits(self: GraphRun, blocked: list[tuple[Attempt, Blocked]]) -> None:
    """Record the signal waits of the other waiting steps: their signals wake the task too.

    The steps run again when it wakes and find these waits by position, as a step
    finds the wait it stopped at (:mod:`salvador_django.engine.waits`).
    """
    waits = Wait.objects.using(self.engine.database)
    for attempt, wait_ in blocked:
        if wait_.recorded:
            continue
        until = wait_.until if wait_.until is not None else None
        if until is None and wait_.seconds is not None:
            until = timezone.now() + timedelta(seconds=wait_.seconds)
        waits.create(
            task_id=self.task.id,
            step_name=attempt.step.name,
            position=wait_.position,
            kind=wait_.kind,
            name=wait_.name,
            until=until,
        )


def _woken_by_a_signal_sent(self: GraphRun, blocked: list[tuple[Attempt, Blocked]]) -> bool:
    """After the task began to wait: a signal another step waits for came meanwhile, so the
    task is due again (woken here, as a signal sent now would wake it)."""
    names = {wait_.name for _, wait_ in blocked}
    database = self.engine.database
    came = Signal.objects.using(database).filter(
        task_id=self.task.id, name__in=names, consumed_at__isnull=True
    )
    if not came.exists():
        return False
    tasks = Task.objects.using(database)
    return bool(
        self.engine.writes.with_lock_retry(
            lambda: transitions.WAKE.apply(tasks, where={"id": self.task.id})
        )
    )


def _retry_later(self: GraphRun) -> Outcome:
    """Steps wait for their next attempt and nothing else can run: pending until the first."""
    name = min(self.retry_at, key=self.retry_at.__getitem__)
    delay = max(0.0, self.retry_at[name] - time.monotonic())
    moved = self.engine.writes.move(
        transitions.RETRY,
        self.task,
        self.lease,
        step=len(self.done),
        step_name=name,
        delay=delay,
        attempt=0,
    )
    if not moved:
        return lost(self.task)
    self.task.status, self.task.step_name = TaskStatus.PENDING, name
    return Outcome.RETRY
