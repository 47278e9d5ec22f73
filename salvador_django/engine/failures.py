"""The failure policy: what a failed attempt leads to (a retry, a failure, a cancellation).

An attempt fails when its step raises, returns something that cannot be stored, or
outlives its timeout (:func:`time_out`, a watchdog's call). Its retry policy decides
between another attempt after a backoff and the task's end; a cancellation requested
meanwhile wins over a retry. Completed steps with compensations are undone first.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from salvador_django import transitions
from salvador_django.engine.compensation import compensate, to_compensate
from salvador_django.engine.outcome import Outcome, lost
from salvador_django.engine.text import loggable
from salvador_django.engine.writes import describe
from salvador_django.exceptions import StepTimeout
from salvador_django.leases import Attempt, Lease
from salvador_django.models import Task
from salvador_django.status import TaskStatus

if TYPE_CHECKING:
    from salvador_django.definitions import Workflow
    from salvador_django.engine.runner import Engine

logger = logging.getLogger("salvador_django")


def after_failure(engine: Engine, attempt: Attempt, exc: Exception) -> Outcome:
    """The step of ``attempt`` raised ``exc``: retry it, or end the task."""
    retry = attempt.workflow.retry_for(attempt.step, attempt.task)
    if not retry.should_retry(exc, attempt.number):
        return fail(engine, attempt.task, attempt.lease, exc, attempt)
    if engine.writes.cancel_requested(attempt.task):
        return fail(engine, attempt.task, attempt.lease, exc, attempt, cancelled=True)
    return retry_later(engine, attempt, retry.delay(attempt.number), exc)


def time_out(
    engine: Engine, lease: Lease, attempt: Attempt, stack: str = "", *, fate: str
) -> Outcome:
    """Fail an attempt whose step has not returned by its deadline (a watchdog's call).

    First it moves the claim to a token of its own, but only while the task is still
    at this attempt: the step's thread (or process), if it ever returns, then writes
    nothing, and an attempt that ended meanwhile is left alone (returns
    ``Outcome.LOST``). Then it writes what the step's own failure would: a failed
    ``StepRun``, then a retry or the task's failure. ``stack`` is where it hung.
    """
    step, task = attempt.step, attempt.task
    watchdog = Lease(task.id, f"{lease.token}:timeout")
    still_at_attempt = {"id": task.id, "step": attempt.index, "attempt": attempt.number - 1}
    taken = engine.writes.with_lock_retry(
        lambda: transitions.TAKE_OVER.apply(
            Task.objects.using(engine.database),
            token=lease.token,
            where=still_at_attempt,
            claimant=watchdog.token,
        )
    )
    if not taken:
        return Outcome.LOST
    lease.lost.set()
    exc = StepTimeout(
        f"Step {step.name!r} ran longer than its timeout of {step.timeout}s and {fate}."
    )
    if stack:
        exc.add_note(f"The step was still running here:\n{stack}")
    run = replace(attempt, lease=watchdog)
    retry = attempt.workflow.retry_for(step, task)
    retried = retry.should_retry(exc, attempt.number)
    if retried and not engine.writes.cancel_requested(task):
        return retry_later(engine, run, retry.delay(attempt.number), exc)
    # A retry was due but a cancellation is waiting: the task ends cancelled. Either
    # way compensations are left to a worker, not run in a watchdog or a supervisor.
    return fail(engine, task, watchdog, exc, run, cancelled=retried, compensate_here=False)


def retry_later(engine: Engine, attempt: Attempt, delay: float, exc: Exception) -> Outcome:
    """Record the failed attempt; the task is pending again, due after ``delay``."""
    task, error = attempt.task, describe(exc)
    recorded = engine.writes.record_failure(
        task,
        attempt.lease,
        transitions.RETRY,
        exc,
        attempt,
        step=attempt.index,
        step_name=attempt.step.name,
        delay=delay,
        attempt=attempt.number,
        error=error,
    )
    if not recorded:
        return lost(task)
    task.status = TaskStatus.PENDING
    logger.info(
        "salvador: task %s (%s) step %r attempt %d failed (%s); retry in %.1fs",
        task.id,
        task.workflow,
        attempt.step.name,
        attempt.number,
        loggable(error),
        delay,
    )
    return Outcome.RETRY


def fail(
    engine: Engine,
    task: Task,
    lease: Lease,
    exc: Exception,
    attempt: Attempt | None,
    *,
    cancelled: bool = False,
    compensate_here: bool = True,
    workflow: Workflow | None = None,
) -> Outcome:
    """End the task ``failed`` (or ``cancelled``), recording the failed attempt.

    ``attempt`` is None when no step could run (its workflow or step is gone). If
    completed steps have compensations, they run first: here, or, without
    ``compensate_here``, by the worker that claims the task next.
    """
    error = describe(exc)
    position: dict[str, Any] = {"step": task.step, "step_name": task.step_name}
    workflow = attempt.workflow if attempt is not None else workflow
    if workflow is not None and to_compensate(workflow, task):
        recorded = engine.writes.record_failure(
            task,
            lease,
            transitions.START_COMPENSATION,
            exc,
            attempt,
            error=error,
            cancelled=cancelled,
            hand_off=not compensate_here,
            **position,
        )
        if not recorded:
            return lost(task)
        if not compensate_here:
            task.status = TaskStatus.PENDING
            return Outcome.RETRY
        task.error, task.attempt, task.deadline = error, 0, None
        # Compensations see the state of the last checkpoint, not the failed attempt's.
        task.state = engine.writes.row(task).values_list("state", flat=True).get()
        task.cancel_requested_at = timezone.now() if cancelled else None
        return compensate(engine, task, lease, workflow)
    number = attempt.number if attempt is not None else task.attempt
    move = transitions.END_CANCELLED if cancelled else transitions.FAIL
    recorded = engine.writes.record_failure(
        task, lease, move, exc, attempt, attempt=number, error=error, **position
    )
    if not recorded:
        return lost(task)
    task.status = TaskStatus.CANCELLED if cancelled else TaskStatus.FAILED
    logger.info(
        "salvador: task %s (%s) %s at step %r: %s",
        task.id,
        task.workflow,
        task.status,
        task.step_name,
        loggable(error),
    )
    return Outcome.CANCELLED if cancelled else Outcome.FAILED


def cancel(engine: Engine, task: Task, lease: Lease, workflow: Workflow) -> Outcome:
    """End a task whose cancellation was requested, at its current step.

    If completed steps have compensations, they run first.
    """
    position: dict[str, Any] = {"step": task.step, "step_name": task.step_name}
    if to_compensate(workflow, task):
        started = engine.writes.move(
            transitions.START_COMPENSATION,
            task,
            lease,
            error=None,
            cancelled=True,
            hand_off=False,
            **position,
        )
        if not started:
            return lost(task)
        task.cancel_requested_at = task.cancel_requested_at or timezone.now()
        task.attempt, task.deadline = 0, None
        return compensate(engine, task, lease, workflow)
    if not engine.writes.move(transitions.END_CANCELLED, task, lease, **position):
        return lost(task)
    task.status = TaskStatus.CANCELLED
    logger.info(
        "salvador: task %s (%s) cancelled before step %r", task.id, task.workflow, task.step_name
    )
    return Outcome.CANCELLED
