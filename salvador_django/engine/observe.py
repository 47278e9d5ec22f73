"""What the engine tells of a step as it runs: the public signals and its span.

The moves that end, requeue or suspend a task tell their own signals
(:mod:`salvador_django.transitions.told`); the engine tells what only it knows: a
task's first claim, a step attempt's start and end, a task's completion.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from salvador_django import signals, tracing
from salvador_django.models import Task

if TYPE_CHECKING:
    from salvador_django.leases import Attempt

COMPLETED, FAILED, RETRYING, SKIPPED, WAITING = (
    "completed", "failed", "retrying", "skipped", "waiting",
)  # fmt: skip


def task_started(task: Task, worker: str, database: str) -> None:
    """A claimed task: ``task_started`` if this is its first claim.

    A claim writes ``started_at`` only when it has none, and ``updated_at`` always, from
    the one clock reading of its statement: the two are equal on the first claim only.
    """
    if signals.listened(signals.task_started) and task.started_at == task.updated_at:
        signals.send_on_commit(signals.task_started, Task, database, task=task, worker=worker)


def step_started(attempt: Attempt, worker: str) -> None:
    """An attempt begins: its span opens, ``step_started`` is sent."""
    task, step = attempt.task, attempt.step.name
    attempt.span = tracing.start_step(task, step, attempt.number, worker)
    if signals.listened(signals.step_started):
        signals.send(
            signals.step_started, Task, task=task, step=step, attempt=attempt.number, worker=worker
        )


def step_finished(
    attempt: Attempt,
    outcome: str,
    database: str,
    worker: str,
    error: BaseException | None = None,
    error_text: str = "",
) -> None:
    """An attempt ended and its record is written: its span ends, ``step_finished`` is
    sent when that commits (and ``task_finished`` when it completed the task)."""
    span, attempt.span = attempt.span, None
    tracing.end_step(span, outcome, error)
    if signals.listened(signals.step_finished):
        signals.send_on_commit(
            signals.step_finished, Task, database,
            task=attempt.task, step=attempt.step.name, attempt=attempt.number, worker=worker,
            outcome=outcome, duration=time.monotonic() - attempt.began, error=error_text,
        )  # fmt: skip


def task_completed(task: Task, database: str) -> None:
    signals.send_on_commit(signals.task_finished, Task, database, task=task, status=COMPLETED)


def interrupted(attempt: Attempt, outcome: str = "interrupted") -> None:
    """An attempt ended with nothing recorded (its lease lost, the database gone): its
    span, if still open, ends so; the attempt runs again."""
    span, attempt.span = attempt.span, None
    if span is not None and span.is_recording():
        tracing.end_step(span, outcome)
