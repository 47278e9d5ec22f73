"""The forward run: a claimed task's steps in order, a checkpoint after each one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

import salvador_django.engine.observe as observe
from salvador_django import logs, transitions
from salvador_django.conf import get_settings
from salvador_django.definitions import Step, Workflow
from salvador_django.engine.blocked import Suspend
from salvador_django.engine.branches import BranchPool
from salvador_django.engine.compensation import compensate
from salvador_django.engine.failures import after_failure, cancel, fail, time_out
from salvador_django.engine.graph import GraphRun
from salvador_django.engine.outcome import (
    CheckpointFailed,
    Outcome,
    call_step,
    database_lost,
    lost,
)
from salvador_django.engine.suspension import wait
from salvador_django.engine.waits import StepWaits
from salvador_django.engine.writes import Writes
from salvador_django.exceptions import (
    ConfigurationError,
    LeaseLost,
    StepNotFound,
    WorkflowNotFound,
)
from salvador_django.leases import Attempt, Lease, renew_leases
from salvador_django.models import Task
from salvador_django.queries import Checkpoint
from salvador_django.registry import registry
from salvador_django.status import CompensationStatus, TaskStatus

logger = logging.getLogger("salvador_django")


class Engine:
    """Runs claimed tasks of registered workflows for one worker.

    It knows tasks and workflow definitions, not which queue or process it runs in.
    Every write is fenced on the claim: a worker that lost its lease writes nothing.
    """

    def __init__(self, *, database: str, worker_name: str, parallelism: int | None = None) -> None:
        self.database = database
        self.worker_name = worker_name
        self.writes = Writes(database, worker_name)
        #: How many steps of one graph task may run at the same time (threads).
        self.parallelism = parallelism or get_settings().CONCURRENCY
        #: Whether a graph step with a timeout runs in a thread of its own, watched (a
        #: worker's), or in the run's thread with the others, checked when it returns.
        self.watch_timeouts = True
        self._branches: BranchPool | None = None
        self._branches_lock = threading.Lock()
        #: Told of each attempt of a step with a timeout as it starts, then None as it
        #: ends: how a process pool's supervisor learns what its children run.
        self.on_attempt: Callable[[Lease, Attempt | None], None] | None = None

    def run(
        self, task: Task, lease: Lease, should_stop: Callable[[], bool] = lambda: False
    ) -> Outcome:
        """Run ``task`` from its next step until it completes, fails, waits or is released."""
        observe.task_started(task, self.worker_name, self.database)
        about = {"task_id": str(task.id), "workflow": task.workflow, "worker": self.worker_name}
        with logs.task_context(**about):
            return self._run(task, lease, should_stop)

    def _run(self, task: Task, lease: Lease, should_stop: Callable[[], bool]) -> Outcome:
        try:
            workflow = registry.get(task.workflow)
            if task.compensation == CompensationStatus.RUNNING:
                return compensate(self, task, lease, workflow, should_stop)
            if not workflow.graph.linear:
                return self._run_graph(task, lease, workflow, should_stop)
            index = _resume_index(workflow, task)
        except (WorkflowNotFound, StepNotFound, ConfigurationError) as exc:
            return fail(self, task, lease, exc, None)
        task.step = index
        requested = self._requested(task, lease, workflow)
        if requested is not None:
            return requested
        while index < len(workflow.steps):
            if not self.still_held(lease):
                return lost(task)
            if should_stop():
                return self.release(task, lease)
            step = workflow.steps[index]
            task.step_name = step.name
            outcome = self._run_step(task, lease, workflow, index, step)
            if outcome is not None:
                return outcome
            index += 1
        return Outcome.COMPLETED

    def _run_graph(
        self, task: Task, lease: Lease, workflow: Workflow, should_stop: Callable[[], bool]
    ) -> Outcome:
        requested = self._requested(task, lease, workflow)
        if requested is not None:
            return requested
        return GraphRun(self, task, lease, workflow, should_stop).run()

    def _requested(self, task: Task, lease: Lease, workflow: Workflow) -> Outcome | None:
        """Before a claimed task runs: a cancel or a pause requested while it waited for a
        retry takes effect; None when neither did (or the pause was withdrawn)."""
        if task.cancel_requested_at is not None:
            return cancel(self, task, lease, workflow)
        if task.pause_requested_at is not None:
            return self.pause(task, lease, workflow)
        return None

    def branches(self) -> BranchPool:
        """The threads that run graph tasks' parallel steps (started when first needed)."""
        with self._branches_lock:
            if self._branches is None:
                self._branches = BranchPool(self.parallelism)
            return self._branches

    def close(self) -> None:
        """Stop the branch threads (each closes its database connections)."""
        with self._branches_lock:
            branches, self._branches = self._branches, None
        if branches is not None:
            branches.close()

    def time_out(
        self, lease: Lease, attempt: Attempt, stack: str = "", *, fate: str = "was abandoned"
    ) -> Outcome:
        """Fail an attempt that outlived its step's timeout; see :func:`failures.time_out`."""
        return time_out(self, lease, attempt, stack, fate=fate)

    def still_held(self, lease: Lease) -> bool:
        """Whether the claim is still ours, checked before a step starts.

        Heartbeats renew a lease every third of it; when half of it has passed without
        one, this process was paused or cut off from the database, and the lease may
        have expired and been taken over. Renewing it here first means such a worker
        does not start a step it no longer owns (its writes would be refused anyway).
        """
        if not lease.lost.is_set() and lease.overdue(0.5):
            renew_leases(self.database, [lease])
        return not lease.lost.is_set()

    def release(self, task: Task, lease: Lease) -> Outcome:
        """Hand an unfinished task back to ``pending`` at its current step (shutdown)."""
        if not self.writes.move(transitions.RELEASE, task, lease):
            return lost(task)
        logger.info(
            "salvador: task %s (%s) released at step %r", task.id, task.workflow, task.step_name
        )
        task.status = TaskStatus.PENDING
        return Outcome.RELEASED

    def pause(self, task: Task, lease: Lease, workflow: Workflow) -> Outcome | None:
        """Pause the task between steps: its pause was requested while it ran.

        None when the request was withdrawn meanwhile (``resume()``): the task goes on.
        A cancellation that came meanwhile wins.
        """
        if not self.writes.move(transitions.PAUSE_AFTER_STEP, task, lease):
            held = self.writes.row(task).filter(claimed_by=lease.token, status=TaskStatus.RUNNING)
            found = held.values_list("cancel_requested_at", flat=True)
            if not found.exists():
                return lost(task)
            if found.first() is not None:
                return cancel(self, task, lease, workflow)
            return None
        logger.info(
            "salvador: task %s (%s) paused before step %r", task.id, task.workflow, task.step_name
        )
        task.status = TaskStatus.PAUSED
        return Outcome.PAUSED

    def _run_step(
        self, task: Task, lease: Lease, workflow: Workflow, index: int, step: Step
    ) -> Outcome | None:
        number = task.attempt = task.attempt + 1  # while a step runs: this attempt's number
        attempt = Attempt(task, lease, workflow, index, step, number, started=timezone.now())
        attempt.waits = task._step_waits = StepWaits(self.database, task, step.name)
        if step.timeout:
            attempt.deadline = attempt.began + step.timeout
        task.deadline = attempt.deadline
        if attempt.deadline is not None:
            lease.attempt = attempt
            if self.on_attempt is not None:
                self.on_attempt(lease, attempt)
        try:
            with logs.task_context(step=step.name, attempt=number):
                return self._attempt(attempt)
        finally:
            observe.interrupted(attempt)
            task._step_waits = None
            if lease.attempt is not None and self.on_attempt is not None:
                self.on_attempt(lease, None)
            lease.attempt = None

    def _attempt(self, attempt: Attempt) -> Outcome | None:
        """Run the step and checkpoint it; an outcome if the task stops here, else None."""
        task, workflow, index = attempt.task, attempt.workflow, attempt.index
        is_last = index + 1 == len(workflow.steps)
        next_name = "" if is_last else workflow.steps[index + 1].name
        try:
            if attempt.step.atomic:
                with transaction.atomic(using=self.database):
                    # Beginning may have waited for a lock (SQLite's write lock, held
                    # by a worker that is paused, say) for longer than the lease.
                    if not self.still_held(attempt.lease):
                        raise LeaseLost
                    written = self.writes.checkpoint(
                        attempt, call_step(attempt, self.worker_name), next_name
                    )
            else:
                written = self.writes.checkpoint(
                    attempt, call_step(attempt, self.worker_name), next_name
                )
        except Suspend as suspended:
            return wait(self, attempt, suspended.blocked)
        except LeaseLost:
            return lost(task)
        except CheckpointFailed:
            raise  # not the step's fault: the lease expires and the step is replayed
        except Exception as exc:
            if database_lost(exc, self.database):
                raise CheckpointFailed(f"the database went away under the step: {exc}") from exc
            return after_failure(self, attempt, exc)
        if is_last:
            logger.info("salvador: task %s (%s) completed", task.id, task.workflow)
        elif written == Checkpoint.CANCEL_REQUESTED:
            return cancel(self, task, attempt.lease, workflow)
        elif written == Checkpoint.PAUSE_REQUESTED:
            return self.pause(task, attempt.lease, workflow)
        return None


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
