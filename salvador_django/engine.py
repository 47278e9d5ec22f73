"""Run a claimed task's steps in order, checkpointing after each one.

The engine knows tasks and workflow definitions; it does not know which queue or
process it runs in. Every write is fenced on the claim (``Task.objects.held``): a
worker that lost its lease writes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, OperationalError, transaction
from django.db.models.functions import Now
from django.utils import timezone

from salvador_django.definitions import Step, Workflow, registry
from salvador_django.exceptions import (
    LeaseLost,
    NotSerialisable,
    StepNotFound,
    StepTimeout,
    WorkflowNotFound,
)
from salvador_django.models import Checkpoint, StepRun, Task, now_plus
from salvador_django.status import CompensationStatus, StepRunStatus, TaskStatus

logger = logging.getLogger("salvador_django")

_LOCK_RETRIES = 20
_LOCK_RETRY_SECONDS = 0.05


@dataclass
class Attempt:
    """The step attempt a worker is running: what a watchdog needs to time it out."""

    task: Task
    workflow: Workflow
    index: int
    step: Step
    number: int
    started: datetime
    deadline: float  # time.monotonic() by which the step should have returned


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

    def overdue(self, fraction: float = 1.0) -> bool:
        """Whether ``fraction`` of the lease has passed since it was last renewed."""
        return (
            self.seconds is not None
            and time.monotonic() - self.renewed_at > self.seconds * fraction
        )


def renew_leases(database: str, leases: Sequence[Lease]) -> None:
    """Extend each lease by its length; flag those whose claim is gone as lost.

    The heartbeat of a worker (all its leases) and of a Celery task (one) both call
    this. Raises the database's error when it cannot reach the database.
    """
    tokens_by_length: dict[float, list[str]] = {}  # one length, in practice
    for lease in leases:
        if lease.seconds is not None:
            tokens_by_length.setdefault(lease.seconds, []).append(lease.token)
    tokens = [token for same in tokens_by_length.values() for token in same]
    if not tokens:
        return
    sent = time.monotonic()  # the renewed leases run from no earlier than this
    tasks = Task.objects.using(database).filter(status=TaskStatus.RUNNING)
    renewed = sum(
        tasks.filter(claimed_by__in=same).update(lease_expires_at=now_plus(seconds))
        for seconds, same in tokens_by_length.items()
    )
    held: set[str | None] = set(tokens)
    if renewed < len(tokens):  # some claim is gone: find which
        held = set(tasks.filter(claimed_by__in=tokens).values_list("claimed_by", flat=True))
    for lease in leases:
        if lease.seconds is None:
            continue
        if lease.token in held:
            lease.renewed_at = max(lease.renewed_at, sent)
        else:
            lease.lost.set()


class CheckpointFailed(Exception):
    """The database failed while recording a completed step."""


class Outcome:
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"
    RELEASED = "released"
    LOST = "lost"
    CANCELLED = "cancelled"


class Engine:
    """Runs claimed tasks of registered workflows for one worker."""

    def __init__(self, *, database: str, worker_name: str) -> None:
        self.database = database
        self.worker_name = worker_name
        #: Told of each attempt of a step with a timeout as it starts, then None as it
        #: ends: how a process pool's supervisor learns what its children run.
        self.on_attempt: Callable[[Lease, Attempt | None], None] | None = None

    def run(self, task: Task, lease: Lease, should_stop: Callable[[], bool] = lambda: False) -> str:
        """Run ``task`` from its next step until it completes, fails, waits or is released."""
        try:
            workflow = registry.get(task.workflow)
            if task.compensation == CompensationStatus.RUNNING:
                return self._compensate(task, lease, workflow, should_stop)
            index = _resume_index(workflow, task)
        except (WorkflowNotFound, StepNotFound) as exc:
            return self._fail(task, lease, None, exc, started=timezone.now(), attempt=task.attempt)
        task.step = index
        if task.cancel_requested_at is not None:  # cancelled while it waited for a retry
            return self._cancel(task, lease, workflow)
        while index < len(workflow.steps):
            if not self._still_held(lease):
                return self._lost(task)
            if should_stop():
                return self._release(task, lease)
            step = workflow.steps[index]
            task.step_name = step.name
            outcome = self._run_step(task, lease, workflow, index, step)
            if outcome is not None:
                return outcome
            index += 1
        return Outcome.COMPLETED

    def _run_step(
        self, task: Task, lease: Lease, workflow: Workflow, index: int, step: Step
    ) -> str | None:
        attempt = task.attempt = task.attempt + 1  # while a step runs: this attempt's number
        started = timezone.now()
        began = time.monotonic()
        task.deadline = began + step.timeout if step.timeout else None
        if task.deadline is not None:
            lease.attempt = Attempt(task, workflow, index, step, attempt, started, task.deadline)
            if self.on_attempt is not None:
                self.on_attempt(lease, lease.attempt)
        try:
            return self._attempt(task, lease, workflow, index, step, attempt, started, began)
        finally:
            if lease.attempt is not None and self.on_attempt is not None:
                self.on_attempt(lease, None)
            lease.attempt = None

    def _attempt(
        self,
        task: Task,
        lease: Lease,
        workflow: Workflow,
        index: int,
        step: Step,
        attempt: int,
        started: datetime,
        began: float,
    ) -> str | None:
        is_last = index + 1 == len(workflow.steps)
        next_name = "" if is_last else workflow.steps[index + 1].name
        try:
            if step.atomic:
                with transaction.atomic(using=self.database):
                    # Beginning may have waited for a lock (SQLite's write lock, held
                    # by a worker that is paused, say) for longer than the lease.
                    if not self._still_held(lease):
                        raise LeaseLost
                    output = self._call(step, task, began)
                    result = self._checkpoint(
                        task, lease, index, step, attempt, started, output, next_name
                    )
            else:
                output = self._call(step, task, began)
                result = self._checkpoint(
                    task, lease, index, step, attempt, started, output, next_name
                )
        except LeaseLost:
            return self._lost(task)
        except CheckpointFailed:
            raise  # not the step's fault: the lease expires and the step is replayed
        except Exception as exc:
            retry = workflow.retry_for(step)
            if retry.should_retry(exc, attempt) and self._cancel_requested(task):
                return self._fail(
                    task,
                    lease,
                    step,
                    exc,
                    started=started,
                    attempt=attempt,
                    cancelled=True,
                    workflow=workflow,
                )
            if retry.should_retry(exc, attempt):
                return self._retry(task, lease, index, step, retry.delay(attempt), exc, started)
            return self._fail(
                task, lease, step, exc, started=started, attempt=attempt, workflow=workflow
            )
        if is_last:
            logger.info("salvador: task %s (%s) completed", task.id, task.workflow)
        elif result == Checkpoint.CANCEL_REQUESTED:
            return self._cancel(task, lease, workflow)
        return None

    def time_out(
        self, lease: Lease, attempt: Attempt, stack: str = "", *, fate: str = "was abandoned"
    ) -> str:
        """Fail an attempt whose step has not returned by its deadline (a watchdog's call).

        First it moves the claim to a token of its own, but only while the task is
        still at this attempt: the step's thread (or process), if it ever returns, then
        writes nothing, and an attempt that ended meanwhile is left alone (returns
        ``Outcome.LOST``). Then it writes what the step's own failure would: a failed
        ``StepRun``, then a retry or the task's failure. ``stack`` is where it hung.
        """
        step, task = attempt.step, attempt.task
        watchdog = Lease(task.id, f"{lease.token}:timeout")
        taken = self._with_lock_retry(
            lambda: (
                Task.objects.using(self.database)
                .held(task.id, lease.token)
                .filter(step=attempt.index, attempt=attempt.number - 1)
                .update(claimed_by=watchdog.token)
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
        retry = attempt.workflow.retry_for(step)
        retried = retry.should_retry(exc, attempt.number)
        if retried and not self._cancel_requested(task):
            return self._retry(
                task,
                watchdog,
                attempt.index,
                step,
                retry.delay(attempt.number),
                exc,
                attempt.started,
            )
        return self._fail(
            task,
            watchdog,
            step,
            exc,
            started=attempt.started,
            attempt=attempt.number,
            cancelled=retried,  # a retry was due, but a cancellation is waiting
            workflow=attempt.workflow,
            compensate_here=False,  # not in a watchdog or a supervisor: a worker will
        )

    def _still_held(self, lease: Lease) -> bool:
        """Whether the claim is still ours, checked before a step starts.

        Heartbeats renew a lease every third of it; when half of it has passed without
        one, this process was paused or cut off from the database, and the lease may
        have expired and been taken over. Renewing it here first means such a worker
        does not start a step it no longer owns (its writes would be refused anyway).
        """
        if not lease.lost.is_set() and lease.overdue(0.5):
            renew_leases(self.database, [lease])
        return not lease.lost.is_set()

    def _call(self, step: Step, task: Task, began: float) -> Any:
        output = step.fn(task)
        if step.timeout is not None and time.monotonic() - began > step.timeout:
            raise StepTimeout(f"Step {step.name!r} ran longer than its timeout of {step.timeout}s.")
        return output

    def _checkpoint(
        self,
        task: Task,
        lease: Lease,
        index: int,
        step: Step,
        attempt: int,
        started: datetime,
        output: Any,
        next_name: str,
    ) -> Checkpoint:
        output_text = (
            None if output is None else _encode(output, f"the return value of step {step.name!r}")
        )
        state_text = _encode(task.state, "task.state")
        run = {
            "index": index,
            "name": step.name,
            "attempt": attempt,
            "started_at": started,
            "finished_at": timezone.now(),
            "output": output_text,
            "worker": self.worker_name,
        }
        try:
            held = self._with_lock_retry(
                lambda: Task.objects.using(self.database).checkpoint(
                    task.id,
                    lease.token,
                    step=index + 1,
                    step_name=next_name,
                    state_json=state_text,
                    run=run,
                )
            )
        except DatabaseError as exc:
            raise CheckpointFailed from exc
        if held == Checkpoint.LOST:
            raise LeaseLost
        task.step, task.step_name, task.attempt, task.error = index + 1, next_name, 0, ""
        task.state = json.loads(state_text)  # the next step sees what a resumed run would see
        if not next_name:
            task.status = TaskStatus.COMPLETED
        return Checkpoint(held)

    def _retry(
        self,
        task: Task,
        lease: Lease,
        index: int,
        step: Step,
        delay: float,
        exc: Exception,
        started: datetime,
    ) -> str:
        attempt = task.attempt
        error = _describe(exc)
        recorded = self._record_failure(
            task,
            lease,
            step,
            index,
            attempt,
            started,
            exc,
            {
                "status": TaskStatus.PENDING,
                "run_after": now_plus(delay),
                "attempt": attempt,
                "error": error,
                "claimed_by": None,
                "lease_expires_at": None,
            },
            retried=True,
        )
        if not recorded:
            return self._lost(task)
        task.status = TaskStatus.PENDING
        logger.info(
            "salvador: task %s (%s) step %r attempt %d failed (%s); retry in %.1fs",
            task.id,
            task.workflow,
            step.name,
            attempt,
            error,
            delay,
        )
        return Outcome.RETRY

    def _fail(
        self,
        task: Task,
        lease: Lease,
        step: Step | None,
        exc: Exception,
        *,
        started: datetime,
        attempt: int,
        cancelled: bool = False,
        workflow: Workflow | None = None,
        compensate_here: bool = True,
    ) -> str:
        """End the task ``failed`` (or ``cancelled``), recording the failed attempt.

        If completed steps of ``workflow`` have compensations, they run first: here,
        or, without ``compensate_here``, by the worker that claims the task next.
        """
        error = _describe(exc)
        status = TaskStatus.CANCELLED if cancelled else TaskStatus.FAILED
        if workflow is not None and _to_compensate(workflow, task.step):
            changes: dict[str, Any] = {
                "attempt": 0,
                "error": error,
                "compensation": CompensationStatus.RUNNING,
                # Whether the task ends cancelled is decided now, for good.
                **({} if cancelled else {"cancel_requested_at": None}),
            }
            if not compensate_here:  # hand the compensation to a worker
                changes.update(
                    status=TaskStatus.PENDING,
                    run_after=Now(),
                    claimed_by=None,
                    lease_expires_at=None,
                )
            recorded = self._record_failure(
                task, lease, step, task.step, attempt, started, exc, changes
            )
            if not recorded:
                return self._lost(task)
            if not compensate_here:
                task.status = TaskStatus.PENDING
                return Outcome.RETRY
            task.error, task.attempt, task.deadline = error, 0, None
            # Compensations see the state of the last checkpoint, not the failed attempt's.
            task.state = (
                Task.objects.using(self.database).values_list("state", flat=True).get(id=task.id)
            )
            task.cancel_requested_at = timezone.now() if cancelled else None
            return self._compensate(task, lease, workflow)
        recorded = self._record_failure(
            task,
            lease,
            step,
            task.step,
            attempt,
            started,
            exc,
            {
                "status": status,
                "attempt": attempt,
                "error": error,
                "finished_at": Now(),
                "claimed_by": None,
                "lease_expires_at": None,
            },
        )
        if not recorded:
            return self._lost(task)
        task.status = status
        logger.info(
            "salvador: task %s (%s) %s at step %r: %s",
            task.id,
            task.workflow,
            status,
            task.step_name,
            error,
        )
        return Outcome.CANCELLED if cancelled else Outcome.FAILED

    def _cancel_requested(self, task: Task) -> bool:
        return (
            Task.objects.using(self.database)
            .filter(id=task.id, cancel_requested_at__isnull=False)
            .exists()
        )

    def _cancel(self, task: Task, lease: Lease, workflow: Workflow) -> str:
        """End a task whose cancellation was requested, at its current step.

        If completed steps have compensations, they run first.
        """
        if _to_compensate(workflow, task.step):
            started = self._with_lock_retry(
                lambda: (
                    Task.objects.using(self.database)
                    .held(task.id, lease.token)
                    .update(
                        step=task.step,
                        attempt=0,
                        compensation=CompensationStatus.RUNNING,
                        updated_at=Now(),
                    )
                )
            )
            if not started:
                return self._lost(task)
            task.cancel_requested_at = task.cancel_requested_at or timezone.now()
            task.attempt, task.deadline = 0, None
            return self._compensate(task, lease, workflow)
        cancelled = self._end(
            task, lease, status=TaskStatus.CANCELLED, step=task.step, step_name=task.step_name
        )
        if not cancelled:
            return self._lost(task)
        task.status = TaskStatus.CANCELLED
        logger.info(
            "salvador: task %s (%s) cancelled before step %r",
            task.id,
            task.workflow,
            task.step_name,
        )
        return Outcome.CANCELLED

    def _record_failure(
        self,
        task: Task,
        lease: Lease,
        step: Step | None,
        index: int,
        attempt: int,
        started: datetime,
        exc: Exception,
        changes: dict[str, Any],
        *,
        retried: bool = False,
        compensation: bool = False,
    ) -> bool:
        """Write the failed attempt and the task's new status in one fenced transaction.

        With ``retried``, the attempt records the ``run_after`` that ``changes`` set as
        its next attempt's time. Returns False, writing nothing, when the lease was lost.
        """

        def write() -> None:
            with transaction.atomic(using=self.database):
                updated = (
                    Task.objects.using(self.database)
                    .held(task.id, lease.token)
                    .update(step=index, step_name=task.step_name, updated_at=Now(), **changes)
                )
                if not updated:
                    raise LeaseLost
                if "run_after" in changes:  # the row's time, on the database's clock, for
                    # the queue: a worker whose clock is off must not schedule by it
                    task.run_after = (
                        Task.objects.using(self.database)
                        .values_list("run_after", flat=True)
                        .get(id=task.id)
                    )
                if step is not None:
                    StepRun.objects.using(self.database).create(
                        task_id=task.id,
                        index=index,
                        name=step.name,
                        attempt=attempt,
                        status=StepRunStatus.FAILED,
                        started_at=started,
                        finished_at=timezone.now(),
                        error=_describe(exc),
                        traceback="".join(traceback.format_exception(exc)),
                        worker=self.worker_name,
                        # The very value the queue waits for: recomputing it in
                        # this later statement would be a moment later.
                        next_attempt_at=task.run_after if retried else None,
                        compensation=compensation,
                    )

        try:
            self._with_lock_retry(write)
        except LeaseLost:
            return False
        return True

    # -- compensation -------------------------------------------------------------------

    def _compensate(
        self,
        task: Task,
        lease: Lease,
        workflow: Workflow,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> str:
        """Undo the completed steps, last first; then end the task failed (or cancelled).

        ``task.step`` counts the steps still to undo. Each compensation is checkpointed
        like a step (a ``StepRun`` marked as compensation, ``step`` one lower), retried
        by the step's retry policy, and resumed after a crash: forward steps never run
        again. A compensation that fails for good ends the task ``failed`` with
        ``compensation = "failed"`` and an error naming that step.
        """
        while task.step > 0:
            if not self._still_held(lease):
                return self._lost(task)
            if should_stop():
                return self._release(task, lease)
            index = task.step - 1
            step = workflow.steps[index] if index < len(workflow.steps) else None
            if step is None or step.compensate is None:
                task.step = index  # nothing to undo: the next checkpoint records it
                continue
            task.step_name = step.name
            outcome = self._compensate_step(task, lease, workflow, index, step)
            if outcome is not None:
                return outcome
        return self._end_compensation(task, lease)

    def _compensate_step(
        self, task: Task, lease: Lease, workflow: Workflow, index: int, step: Step
    ) -> str | None:
        assert step.compensate is not None
        attempt = task.attempt = task.attempt + 1
        started = timezone.now()
        try:
            step.compensate(task)
            state_text = _encode(task.state, "task.state")
        except Exception as exc:
            return self._compensation_failed(task, lease, workflow, index, step, exc, started)

        def write() -> None:
            with transaction.atomic(using=self.database):
                updated = (
                    Task.objects.using(self.database)
                    .held(task.id, lease.token)
                    .update(
                        step=index,
                        step_name=step.name,
                        attempt=0,
                        recoveries=0,
                        state=json.loads(state_text),
                        updated_at=Now(),
                    )
                )
                if not updated:
                    raise LeaseLost
                StepRun.objects.using(self.database).create(
                    task_id=task.id,
                    index=index,
                    name=step.name,
                    attempt=attempt,
                    status=StepRunStatus.COMPLETED,
                    started_at=started,
                    finished_at=timezone.now(),
                    worker=self.worker_name,
                    compensation=True,
                )

        try:
            self._with_lock_retry(write)
        except LeaseLost:
            return self._lost(task)
        except DatabaseError as exc:
            raise CheckpointFailed from exc
        task.step, task.attempt = index, 0
        return None

    def _compensation_failed(
        self,
        task: Task,
        lease: Lease,
        workflow: Workflow,
        index: int,
        step: Step,
        exc: Exception,
        started: datetime,
    ) -> str:
        attempt = task.attempt
        retry = workflow.retry_for(step)
        if retry.should_retry(exc, attempt):
            delay = retry.delay(attempt)
            changes: dict[str, Any] = {
                "status": TaskStatus.PENDING,
                "run_after": now_plus(delay),
                "attempt": attempt,
                "claimed_by": None,
                "lease_expires_at": None,
            }
            recorded = self._record_failure(
                task,
                lease,
                step,
                index + 1,
                attempt,
                started,
                exc,
                changes,
                retried=True,
                compensation=True,
            )
            if not recorded:
                return self._lost(task)
            task.status = TaskStatus.PENDING
            logger.info(
                "salvador: task %s (%s) compensation of step %r attempt %d failed (%s); "
                "retry in %.1fs",
                task.id,
                task.workflow,
                step.name,
                attempt,
                _describe(exc),
                delay,
            )
            return Outcome.RETRY
        error = (
            f"Compensation of step {step.name!r} failed: {_describe(exc)} "
            f"(the task had stopped with: {self._why_stopped(task)})"
        )
        recorded = self._record_failure(
            task,
            lease,
            step,
            index + 1,
            attempt,
            started,
            exc,
            {
                "status": TaskStatus.FAILED,
                "compensation": CompensationStatus.FAILED,
                "attempt": attempt,
                "error": error,
                "finished_at": Now(),
                "claimed_by": None,
                "lease_expires_at": None,
            },
            compensation=True,
        )
        if not recorded:
            return self._lost(task)
        task.status, task.error = TaskStatus.FAILED, error
        logger.error("salvador: task %s (%s): %s", task.id, task.workflow, error)
        return Outcome.FAILED

    def _why_stopped(self, task: Task) -> str:
        """Why the compensation started: a cancellation, or the failed forward attempt."""
        if task.cancel_requested_at is not None:
            return "a cancellation"
        last_failure = (
            StepRun.objects.using(self.database)
            .filter(task_id=task.id, compensation=False, status=StepRunStatus.FAILED)
            .order_by("-id")
            .values_list("error", flat=True)
            .first()
        )
        return last_failure or task.error

    def _end_compensation(self, task: Task, lease: Lease) -> str:
        cancelled = task.cancel_requested_at is not None
        status = TaskStatus.CANCELLED if cancelled else TaskStatus.FAILED
        error = "" if cancelled else self._why_stopped(task)
        ended = self._end(
            task,
            lease,
            status=status,
            error=error,
            compensation=CompensationStatus.COMPLETED,
            step=0,
            step_name="",
            attempt=0,
        )
        if not ended:
            return self._lost(task)
        task.status, task.step, task.step_name = status, 0, ""
        logger.info("salvador: task %s (%s) %s and compensated", task.id, task.workflow, status)
        return Outcome.CANCELLED if cancelled else Outcome.FAILED

    def _end(self, task: Task, lease: Lease, **changes: Any) -> bool:
        """Finish the task with ``changes``, releasing its claim; False if it was lost."""
        return bool(
            self._with_lock_retry(
                lambda: (
                    Task.objects.using(self.database)
                    .held(task.id, lease.token)
                    .update(
                        finished_at=Now(),
                        claimed_by=None,
                        lease_expires_at=None,
                        updated_at=Now(),
                        **changes,
                    )
                )
            )
        )

    def _release(self, task: Task, lease: Lease) -> str:
        """Hand an unfinished task back to ``pending`` at its current step (shutdown)."""
        released = self._with_lock_retry(
            lambda: (
                Task.objects.using(self.database)
                .held(task.id, lease.token)
                .update(
                    status=TaskStatus.PENDING,
                    claimed_by=None,
                    lease_expires_at=None,
                    updated_at=Now(),
                )
            )
        )
        if not released:
            return self._lost(task)
        logger.info(
            "salvador: task %s (%s) released at step %r", task.id, task.workflow, task.step_name
        )
        task.status = TaskStatus.PENDING
        return Outcome.RELEASED

    def _lost(self, task: Task) -> str:
        logger.warning(
            "salvador: task %s (%s) lease lost at step %r; another worker will resume it",
            task.id,
            task.workflow,
            task.step_name,
        )
        return Outcome.LOST

    def _with_lock_retry(self, write: Callable[[], Any]) -> Any:
        """Run ``write``; on SQLite's "database is locked", try again rather than lose it."""
        for attempt in range(_LOCK_RETRIES):
            try:
                return write()
            except OperationalError as exc:
                if "locked" not in str(exc) or attempt == _LOCK_RETRIES - 1:
                    raise
                time.sleep(_LOCK_RETRY_SECONDS * (attempt + 1))
        raise AssertionError("unreachable")


def _to_compensate(workflow: Workflow, completed: int) -> bool:
    """Whether any of the first ``completed`` steps of ``workflow`` has a compensation."""
    return any(step.compensate is not None for step in workflow.steps[:completed])


def _resume_index(workflow: Workflow, task: Task) -> int:
    """The position of the task's next step, found by name so definitions may change."""
    if not workflow.steps:
        raise StepNotFound(f"Workflow {workflow.name!r} has no steps.")
    name = task.step_name or (workflow.steps[0].name if task.step == 0 else "")
    index = workflow.index_of(name)
    if index is None:
        raise StepNotFound(
            f"Task {task.id} is at step {name!r}, which workflow {workflow.name!r} no longer has "
            f"(steps: {', '.join(s.name for s in workflow.steps)})."
        )
    return index


def _encode(value: Any, what: str) -> str:
    """``value`` as JSON text; raises ``NotSerialisable`` naming ``what`` if it is not JSON."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise NotSerialisable(f"{what} is not JSON-serialisable: {exc}") from exc


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
