"""A step stopped at a wait: the task waits there, holding no worker.

The step raised :class:`~salvador_django.engine.waits.Suspend`; :func:`wait` makes
the task wait (or pause, or be cancelled, or run on at once when its signal came
meanwhile) and says how the run ended.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction

import salvador_django.engine.observe as observe
from salvador_django import transitions
from salvador_django.clock import now_plus
from salvador_django.engine.blocked import Blocked
from salvador_django.engine.children import wakes_at_once
from salvador_django.engine.failures import cancel
from salvador_django.engine.outcome import CheckpointFailed, Outcome, lost
from salvador_django.engine.waits import write_effects
from salvador_django.exceptions import LeaseLost
from salvador_django.models import Task, Wait
from salvador_django.status import TaskStatus, WaitKind

if TYPE_CHECKING:
    from salvador_django.engine.runner import Engine
    from salvador_django.leases import Attempt

logger = logging.getLogger("salvador_django")


def wait(engine: Engine, attempt: Attempt, blocked: Blocked) -> Outcome:
    """The step of ``attempt`` stopped at a wait: make the task wait (or pause) there.

    A database failure here is not the step's: as at a checkpoint, the lease expires
    and the step runs again.
    """
    task, lease = attempt.task, attempt.lease
    try:
        status = engine.writes.with_lock_retry(lambda: suspend(attempt, blocked, lease.token))
    except LeaseLost:
        return lost(task)
    except DatabaseError as exc:
        raise CheckpointFailed from exc
    assert attempt.waits is not None
    attempt.waits.clear()
    if status != "cancel":
        observe.step_finished(attempt, observe.WAITING, engine.database, engine.worker_name)
    if status == "cancel":
        return cancel(engine, task, lease, attempt.workflow)
    what = {
        WaitKind.SIGNAL: f"signal {blocked.name!r}",
        WaitKind.CHILDREN: f"{len(blocked.children)} children",
    }.get(blocked.kind, "its timer")  # type: ignore[call-overload]
    until = f" until {task.wake_at.isoformat()}" if task.wake_at is not None else ""
    if status == TaskStatus.PENDING:
        logger.info(
            "salvador: task %s (%s) step %r: %s arrived as it began to wait",
            task.id, task.workflow, attempt.step.name, what,
        )  # fmt: skip
        return Outcome.RELEASED
    logger.info(
        "salvador: task %s (%s) step %r %s for %s%s",
        task.id, task.workflow, attempt.step.name, status, what, until,
    )  # fmt: skip
    return Outcome.PAUSED if status == TaskStatus.PAUSED else Outcome.WAITING


def suspend(attempt: Attempt, blocked: Blocked, token: str) -> str:
    """Make the task wait where its step stopped; write what the step did meanwhile.

    One transaction, fenced on ``token``. First the task's row moves (``WAIT``, which
    locks it, as a signal's delivery does), then the signals are looked at again: a
    signal of the awaited name sent meanwhile wakes the task at once. Returns the
    task's status after it (``waiting``, ``paused``, or ``pending`` when woken), or
    ``"cancel"`` when a cancellation waits. Raises :class:`LeaseLost`.
    """
    task, waits = attempt.task, attempt.waits
    assert waits is not None
    database = waits.database
    tasks = Task.objects.using(database)
    if blocked.until is not None:
        wake_at: Any = blocked.until
    elif blocked.seconds is not None:
        wake_at = now_plus(blocked.seconds)
    else:
        wake_at = None
    with transaction.atomic(using=database):
        left = None
        if blocked.kind == WaitKind.CHILDREN:  # its children marked before its row moves
            write_effects(waits)
            left = waits.children.await_children(blocked)
        moved = transitions.WAIT.apply(
            tasks,
            token=token,
            where={"id": task.id, "cancel_requested_at__isnull": True},
            waiting_for=blocked.name,
            wake_at=wake_at,
            attempt=attempt.number - 1,
            children_left=left,
        )
        if not moved:
            if tasks.filter(id=task.id, claimed_by=token, status=TaskStatus.RUNNING).exists():
                return "cancel"
            raise LeaseLost
        status, task.wake_at = tasks.filter(id=task.id).values_list("status", "wake_at").get()
        if not blocked.recorded:
            Wait.objects.using(database).create(
                task_id=task.id,
                step_name=waits.step_name,
                position=blocked.position,
                kind=blocked.kind,
                name=blocked.name,
                until=task.wake_at,
            )
        if left is None:
            write_effects(waits)
        arrived = blocked.kind == WaitKind.SIGNAL and waits._first_signal(blocked.name)
        if arrived and transitions.WAKE.apply(
            tasks, where={"id": task.id, "waiting_for": blocked.name}
        ):
            status = TaskStatus.PENDING
        if left is not None and wakes_at_once(database, task, left):
            status = TaskStatus.PENDING
    task.status, task.waiting_for = status, blocked.name
    return str(status)
