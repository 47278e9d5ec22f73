"""Compensation: undo a failed or cancelled task's completed steps, last first.

``task.step`` counts the steps still to undo. Each compensation is checkpointed like
a step (a ``StepRun`` marked as compensation, ``step`` one lower), retried by the
step's retry policy, and resumed after a crash: forward steps never run again. A
compensation that fails for good ends the task ``failed`` with ``compensation =
"failed"`` and an error naming that step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from salvador_django import tracing, transitions
from salvador_django.definitions import Step, Workflow
from salvador_django.engine.outcome import Outcome, lost
from salvador_django.engine.text import encode, loggable
from salvador_django.engine.writes import describe
from salvador_django.exceptions import LeaseLost
from salvador_django.leases import Attempt, Lease
from salvador_django.models import Task
from salvador_django.status import TaskStatus

if TYPE_CHECKING:
    from salvador_django.engine.runner import Engine

logger = logging.getLogger("salvador_django")


def to_compensate(workflow: Workflow, task: Task) -> bool:
    """Whether any step the task completed has a compensation."""
    return any(
        step is not None and step.compensate is not None
        for step in map(lambda position: done_step(workflow, task, position), range(task.step))
    )


def done_step(workflow: Workflow, task: Task, position: int) -> Step | None:
    """The step the task completed ``position``-th; None if skipped or gone.

    For a straight line that is its step at ``position``; a graph task's steps are
    undone in reverse order of completion, which its ``progress`` records.
    """
    done = (task.progress or {}).get("done")
    if done is None:
        return workflow.steps[position] if position < len(workflow.steps) else None
    if position >= len(done) or done[position] in task.progress.get("skipped", ()):
        return None
    return workflow.step_named(done[position])


def _undone(task: Task, position: int) -> dict[str, Any] | None:
    """A graph task's progress once its ``position``-th done step is undone: None for a line."""
    progress = task.progress or {}
    if "done" not in progress:
        return None
    done = progress["done"][:position]
    skipped = [name for name in progress.get("skipped", ()) if name in done]
    return {**progress, "done": done, "skipped": skipped}


def compensate(
    engine: Engine,
    task: Task,
    lease: Lease,
    workflow: Workflow,
    should_stop: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Undo the completed steps, last first; then end the task failed (or cancelled)."""
    while task.step > 0:
        if not engine.still_held(lease):
            return lost(task)
        if should_stop():
            return engine.release(task, lease)
        index = task.step - 1
        step = done_step(workflow, task, index)
        if step is None or step.compensate is None:
            task.step = index  # nothing to undo: the next checkpoint records it
            continue
        task.step_name = step.name
        outcome = _compensate_step(engine, task, lease, workflow, index, step)
        if outcome is not None:
            return outcome
    return _end(engine, task, lease)


def _compensate_step(
    engine: Engine, task: Task, lease: Lease, workflow: Workflow, index: int, step: Step
) -> Outcome | None:
    assert step.compensate is not None
    number = task.attempt = task.attempt + 1
    attempt = Attempt(task, lease, workflow, index, step, number, started=timezone.now())
    span = tracing.start_step(task, step.name, number, engine.worker_name, compensation=True)
    try:
        with tracing.using(span):
            step.compensate(task)
        state_text = encode(
            task.state,
            f"task.state after compensating step {step.name!r}",
            engine.writes.json_depth,
        )
    except Exception as exc:
        tracing.end_step(span, "failed", exc)
        return _failed(engine, attempt, exc)
    try:
        engine.writes.record_compensation(attempt, state_text, progress=_undone(task, index))
    except LeaseLost:
        tracing.end_step(span, "interrupted")
        return lost(task)
    tracing.end_step(span, "completed")
    task.step, task.attempt = index, 0
    task.progress = _undone(task, index) or task.progress
    return None


def _failed(engine: Engine, attempt: Attempt, exc: Exception) -> Outcome:
    """A compensation raised: retry it after its backoff, or fail the task for good."""
    task, lease, step = attempt.task, attempt.lease, attempt.step
    retry = attempt.workflow.retry_for(step)
    # The task stays one step above the compensation that failed: it is still to undo.
    position: dict[str, Any] = {"step": attempt.index + 1, "step_name": step.name}
    if retry.should_retry(exc, attempt.number):
        delay = retry.delay(attempt.number)
        recorded = engine.writes.record_failure(
            task,
            lease,
            transitions.RETRY,
            exc,
            attempt,
            compensation=True,
            delay=delay,
            attempt=attempt.number,
            **position,
        )
        if not recorded:
            return lost(task)
        task.status = TaskStatus.PENDING
        logger.info(
            "salvador: task %s (%s) compensation of step %r attempt %d failed (%s); retry in %.1fs",
            task.id,
            task.workflow,
            step.name,
            attempt.number,
            loggable(describe(exc)),
            delay,
        )
        return Outcome.RETRY
    error = (
        f"Compensation of step {step.name!r} failed: {describe(exc)} "
        f"(the task had stopped with: {why_stopped(engine, task)})"
    )
    recorded = engine.writes.record_failure(
        task,
        lease,
        transitions.FAIL_COMPENSATION,
        exc,
        attempt,
        compensation=True,
        attempt=attempt.number,
        error=error,
        **position,
    )
    if not recorded:
        return lost(task)
    task.status, task.error = TaskStatus.FAILED, error
    logger.error("salvador: task %s (%s): %s", task.id, task.workflow, loggable(error))
    return Outcome.FAILED


def why_stopped(engine: Engine, task: Task) -> str:
    """Why the compensation started: a cancellation, or the failed forward attempt."""
    if task.cancel_requested_at is not None:
        return "a cancellation"
    if (task.progress or {}).get("done") is not None and task.error:
        return task.error  # a graph's names each step that failed
    return engine.writes.last_failure(task) or task.error


def _end(engine: Engine, task: Task, lease: Lease) -> Outcome:
    cancelled = task.cancel_requested_at is not None
    error = "" if cancelled else why_stopped(engine, task)
    ended = engine.writes.move(
        transitions.END_COMPENSATION, task, lease, cancelled=cancelled, error=error
    )
    if not ended:
        return lost(task)
    task.status = TaskStatus.CANCELLED if cancelled else TaskStatus.FAILED
    task.step, task.step_name = 0, ""
    logger.info("salvador: task %s (%s) %s and compensated", task.id, task.workflow, task.status)
    return Outcome.CANCELLED if cancelled else Outcome.FAILED
