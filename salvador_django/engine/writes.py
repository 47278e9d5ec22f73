"""The engine's fenced writes: each a move of :mod:`salvador_django.transitions`.

Every write is conditional on the worker still holding the task's claim; a worker
that lost its lease writes nothing (the write reports the loss instead).
"""

from __future__ import annotations

import functools
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import (
    DatabaseError,
    Error,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.utils import timezone

import salvador_django.engine.observe as observe
from salvador_django import dialect, transitions
from salvador_django.engine.outcome import CheckpointFailed
from salvador_django.engine.text import (
    ERROR_CHARS,
    TRACEBACK_CHARS,
    encode,
    loggable,
    storable,
)
from salvador_django.engine.waits import write_effects
from salvador_django.exceptions import LeaseLost, StepsFailed
from salvador_django.leases import Attempt, Lease
from salvador_django.models import StepRun, Task
from salvador_django.queries import Checkpoint
from salvador_django.status import StepRunStatus, TaskStatus
from salvador_django.transitions import Move

logger = logging.getLogger("salvador_django")

#: What a lost connection raises; a checkpoint that failed with it is tried again.
_UNREACHABLE = (OperationalError, InterfaceError)
_UNREACHABLE_RETRY_SECONDS = 0.1
_UNREACHABLE_RETRY_MAX_SECONDS = 2.0
_UNLEASED_SECONDS = 60.0


class Writes:
    """The fenced writes of one worker's engine on one database."""

    def __init__(self, database: str, worker_name: str) -> None:
        self.database = database
        self.worker_name = worker_name
        #: Every task of the database, the queryset each write starts from (never
        #: evaluated itself: built once, not once per step).
        self.tasks = Task.objects.using(database)

    @functools.cached_property
    def json_depth(self) -> int | None:
        """How deep output and state may nest to be stored here (None: no lower limit)."""
        return dialect.stored_json_depth(connections[self.database])

    def row(self, task: Task) -> Any:
        """The task's row, to read."""
        return Task.objects.using(self.database).filter(id=task.id)

    def apply(self, move: Move, task: Task, token: str, **params: Any) -> int:
        """Make ``move`` on the task's row, fenced on ``token``; how many rows moved."""
        return move.apply(
            self.tasks, token=token, where={"id": task.id}, family=family(task), **params
        )

    def move(self, move: Move, task: Task, lease: Lease, **params: Any) -> bool:
        """Make the fenced ``move``; False, writing nothing, if the claim was lost."""
        return bool(self.with_lock_retry(lambda: self.apply(move, task, lease.token, **params)))

    def checkpoint(
        self,
        attempt: Attempt,
        output: Any,
        next_name: str,
        *,
        graph: GraphProgress | None = None,
        skipped: bool = False,
    ) -> Checkpoint:
        """Record the completed ``attempt`` and the task's progress, in one commit.

        ``graph`` is a graph task's progress after the step (its count of done steps,
        its ``progress`` and, when it completes, its result); ``skipped`` records the
        step as skipped (its condition was false) instead of completed.

        Raises :class:`LeaseLost` if the claim is gone, :class:`CheckpointFailed` if
        the database failed, :class:`NotSerialisable` if output or state is not JSON.
        """
        task, step = attempt.task, attempt.step
        depth = self.json_depth
        output_text = (
            None
            if output is None
            else encode(output, f"the return value of step {step.name!r}", depth)
        )
        state_text = encode(task.state, f"task.state after step {step.name!r}", depth)
        run = {
            "index": attempt.index,
            "name": step.name,
            "attempt": attempt.number,
            "started_at": attempt.started,
            "finished_at": timezone.now(),
            "output": output_text,
            "worker": self.worker_name,
        }
        if skipped:
            run["status"] = StepRunStatus.SKIPPED

        waits = attempt.waits
        new_children = bool(waits and waits._children and waits._children.has_effects)

        def statement() -> Checkpoint:
            return self.tasks.checkpoint(
                task.id,
                attempt.lease.token,
                step=attempt.index + 1 if graph is None else graph.step,
                step_name=next_name,
                state_json=state_text,
                run=run,
                family=new_children or family(task),
                graph=None if graph is None else (graph.progress, graph.result, graph.error),
            )

        def with_effects() -> Checkpoint:
            # The children the step started, the signals it took, the waits that
            # ended, its events: one commit. The children first, so that a task that
            # ends with them ends them.
            assert waits is not None
            with transaction.atomic(using=self.database):
                waits.children.write()
                written = statement()
                if written == Checkpoint.LOST:
                    raise LeaseLost  # nothing of it is written
                write_effects(waits, children=False)
                return written

        effects = attempt.waits is not None and attempt.waits.has_effects

        def write() -> Checkpoint:
            return self.with_lock_retry(with_effects if effects else statement)  # type: ignore[no-any-return]

        try:
            written = write()
        except (DatabaseError, InterfaceError) as exc:
            written = self._checkpoint_again(attempt, write, exc)
        if written == Checkpoint.LOST:
            raise LeaseLost
        if attempt.waits is not None:
            attempt.waits.clear()
        task.step, task.step_name, task.attempt, task.error = attempt.index + 1, next_name, 0, ""
        task.state = json.loads(state_text)  # the next step sees what a resumed run would see
        if task._outputs is not None and graph is None:
            task._outputs[step.name] = None if output_text is None else json.loads(output_text)
        observe.step_finished(
            attempt, observe.SKIPPED if skipped else observe.COMPLETED, self.database,
            self.worker_name,
        )  # fmt: skip
        if not next_name:
            task.status = TaskStatus.COMPLETED
            observe.task_completed(task, self.database)
        return Checkpoint(written)

    def _checkpoint_again(
        self, attempt: Attempt, write: Callable[[], Checkpoint], error: Error
    ) -> Checkpoint:
        """Try a checkpoint that failed again, as long as the lease holds.

        So a short database outage replays nothing. The failed try may have committed
        before the connection broke: the step run it wrote (this attempt's start, this
        worker) says so, and is not written twice. An atomic step's checkpoint is not
        tried again: the step's own writes were lost with its transaction.
        """
        lease, task = attempt.lease, attempt.task
        connection = connections[self.database]
        if connection.in_atomic_block or not isinstance(error, _UNREACHABLE):
            raise CheckpointFailed from error
        logger.warning(
            "salvador: task %s (%s): the checkpoint of step %r failed (%s); "
            "trying again while its lease holds",
            task.id,
            task.workflow,
            attempt.step.name,
            loggable(str(error)),
        )
        delay = _UNREACHABLE_RETRY_SECONDS
        while not lease.lost.is_set() and not lease.overdue() and _within_a_lease(lease):
            time.sleep(delay)
            delay = min(delay * 2, _UNREACHABLE_RETRY_MAX_SECONDS)
            connection.close()  # a broken connection is not reused: the next query reconnects
            try:
                if self._step_run_written(attempt):
                    return self.requested(task)
                return write()
            except _UNREACHABLE as exc:
                error = exc
        raise CheckpointFailed from error

    def _step_run_written(self, attempt: Attempt) -> bool:
        """Whether this very attempt's completed step run is recorded."""
        return (
            StepRun.objects.using(self.database)
            .filter(
                task_id=attempt.task.id,
                index=attempt.index,
                compensation=False,
                status=StepRunStatus.COMPLETED,
                started_at=attempt.started,
                worker=self.worker_name,
            )
            .exists()
        )

    def record_failure(
        self,
        task: Task,
        lease: Lease,
        move: Move,
        exc: BaseException,
        run: Attempt | None,
        *,
        compensation: bool = False,
        next_attempt_at: datetime | None = None,
        index: int | None = None,
        **params: Any,
    ) -> bool:
        """Make ``move`` and record the failed attempt ``run``, in one fenced transaction.

        A ``RETRY`` records, as the attempt's next attempt time, the ``run_after`` it
        wrote (else ``next_attempt_at``: a graph step's own retry). The step run's
        index is ``index``, else the move's ``step``. Returns False, writing nothing,
        when the lease was lost.
        """
        retried = move is transitions.RETRY

        def write() -> None:
            with transaction.atomic(using=self.database):
                if not self.apply(move, task, lease.token, **params):
                    raise LeaseLost
                if retried:  # the row's time, on the database's clock, for the queue: a
                    # worker whose clock is off must not schedule by it
                    task.run_after = (
                        Task.objects.using(self.database)
                        .values_list("run_after", flat=True)
                        .get(id=task.id)
                    )
                if run is not None:
                    StepRun.objects.using(self.database).create(
                        task_id=task.id,
                        index=params["step"] if index is None else index,
                        name=run.step.name,
                        attempt=run.number,
                        status=StepRunStatus.FAILED,
                        started_at=run.started,
                        finished_at=timezone.now(),
                        error=describe(exc),
                        traceback=storable(
                            "".join(traceback.format_exception(exc)),
                            TRACEBACK_CHARS,
                            keep_end=True,
                        ),
                        worker=self.worker_name,
                        # The very value the queue waits for: recomputing it in
                        # this later statement would be a moment later.
                        next_attempt_at=task.run_after if retried else next_attempt_at,
                        compensation=compensation,
                    )

        try:
            self.with_lock_retry(write)
        except LeaseLost:
            return False
        if run is not None and not compensation:
            ended = observe.RETRYING if retried or next_attempt_at is not None else observe.FAILED
            observe.step_finished(run, ended, self.database, self.worker_name, exc, describe(exc))
        return True

    def record_compensation(
        self, attempt: Attempt, state_text: str, progress: dict[str, Any] | None = None
    ) -> None:
        """Record a completed compensation: one step fewer to undo. Fenced.

        ``progress`` is a graph task's, without the undone step.
        """
        task, step = attempt.task, attempt.step

        def write() -> None:
            with transaction.atomic(using=self.database):
                moved = self.apply(
                    transitions.COMPENSATE_STEP,
                    task,
                    attempt.lease.token,
                    step=attempt.index,
                    step_name=step.name,
                    state=json.loads(state_text),
                    progress=progress,
                )
                if not moved:
                    raise LeaseLost
                StepRun.objects.using(self.database).create(
                    task_id=task.id,
                    index=attempt.index,
                    name=step.name,
                    attempt=attempt.number,
                    status=StepRunStatus.COMPLETED,
                    started_at=attempt.started,
                    finished_at=timezone.now(),
                    worker=self.worker_name,
                    compensation=True,
                )

        try:
            self.with_lock_retry(write)
        except DatabaseError as exc:
            raise CheckpointFailed from exc

    def requested(self, task: Task) -> Checkpoint:
        """After a checkpoint: whether a cancellation or a pause waits for the task."""
        row = self.row(task).values_list("cancel_requested_at", "pause_requested_at").first()
        if row is not None and row[0] is not None:
            return Checkpoint.CANCEL_REQUESTED
        if row is not None and row[1] is not None:
            return Checkpoint.PAUSE_REQUESTED
        return Checkpoint.WRITTEN

    def cancel_requested(self, task: Task) -> bool:
        return (
            Task.objects.using(self.database)
            .filter(id=task.id, cancel_requested_at__isnull=False)
            .exists()
        )

    def last_failure(self, task: Task) -> str | None:
        """The error of the task's last failed forward attempt, if any."""
        return (
            StepRun.objects.using(self.database)
            .filter(task_id=task.id, compensation=False, status=StepRunStatus.FAILED)
            .order_by("-id")
            .values_list("error", flat=True)
            .first()
        )

    def with_lock_retry(self, write: Callable[[], Any]) -> Any:
        """Run ``write``; when it loses to another's lock (SQLite's "database is locked",
        a MySQL deadlock), try again rather than lose it."""
        return dialect.retry_lock_conflicts(self.database, write)


@dataclass(frozen=True)
class GraphProgress:
    """A graph task's progress as a checkpoint writes it."""

    step: int  # how many steps are done
    progress: dict[str, Any]
    result: Any = None  # the task's result, when this checkpoint completes it
    error: str = ""  # the steps that failed for good meanwhile


def family(task: Task) -> bool:
    """Whether the task may have a parent or children (else its moves skip them)."""
    return task.parent_id is not None or task.has_children is True


def _within_a_lease(lease: Lease) -> bool:
    """For a lease without a length (a test's, say): whether a default lease has passed."""
    return lease.seconds is not None or time.monotonic() - lease.renewed_at < _UNLEASED_SECONDS


def describe(exc: BaseException) -> str:
    """``exc`` as a task's error: its type and message, as the database can store it.

    Bounded to ``ERROR_CHARS`` characters (saying how many were cut); NUL and lone
    surrogates replaced by escapes (saying so).
    """
    message = str(exc)
    if isinstance(exc, StepsFailed):  # names its steps and their errors already
        return storable(message, ERROR_CHARS)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return storable(text, ERROR_CHARS)
