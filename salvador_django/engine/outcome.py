"""How running a claimed task ended, and the engine's own error."""

from __future__ import annotations

import enum
import logging
import time
from typing import TYPE_CHECKING, Any

from django.db import InterfaceError, OperationalError, connections

import salvador_django.engine.observe as observe
from salvador_django import dialect, logs, tracing
from salvador_django.exceptions import SalvadorError, StepTimeout
from salvador_django.models import Task

if TYPE_CHECKING:
    from salvador_django.leases import Attempt

logger = logging.getLogger("salvador_django")


class Outcome(enum.StrEnum):
    """Where a task stands when the engine hands it back to its worker."""

    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"  # pending again, due at its run_after: announce it for then
    RELEASED = "released"  # pending again at the same step, due now (shutdown)
    LOST = "lost"  # the claim was lost: another worker resumes the task
    CANCELLED = "cancelled"
    WAITING = "waiting"  # waits for a signal or a timer, holding no worker
    PAUSED = "paused"


class CheckpointFailed(SalvadorError):
    """The database failed while recording a completed step.

    Not the step's fault: the lease expires and the step is replayed.
    """


def lost(task: Task) -> Outcome:
    """Log that the claim on ``task`` was lost; the outcome that says so."""
    logger.warning(
        "salvador: task %s (%s) lease lost at step %r; another worker will resume it",
        task.id,
        task.workflow,
        task.step_name,
    )
    return Outcome.LOST


def call_step(attempt: Attempt, worker: str) -> Any:
    """Run the attempt's step (``worker`` runs it); a step that returned after its
    timeout failed all the same."""
    step, task = attempt.step, attempt.task
    observe.step_started(attempt, worker)
    about = {"task_id": str(task.id), "workflow": task.workflow, "worker": worker}
    context = logs.task_context(**about, step=step.name, attempt=attempt.number)
    with context, tracing.using(attempt.span):
        output = step.fn(task)
    if step.timeout is not None and time.monotonic() - attempt.began > step.timeout:
        raise StepTimeout(f"Step {step.name!r} ran longer than its timeout of {step.timeout}s.")
    return output


def database_lost(exc: BaseException, database: str) -> bool:
    """Whether ``exc`` is the connection to the database breaking under a step.

    Then the step did not fail: the database went away (a restart, a network cut).
    As with a checkpoint that cannot be written, the lease expires and the step runs
    again; its attempt is not spent. A step's own error (bad SQL, a constraint, a
    lock it waited for) fails the attempt as usual. Told by the error itself: by the
    time it is caught, Django may have connected again.
    """
    if isinstance(exc, InterfaceError):  # a connection already closed
        return True
    if not isinstance(exc, OperationalError):
        return False
    return dialect.connection_broke(connections[database], exc.__cause__)


def reach(database: str) -> None:
    """Make sure this thread's connection to ``database`` answers, connecting again if it
    broke (its server restarted while it was idle); ``CheckpointFailed`` if the database
    cannot be reached. Before a step that may have waited: a database that went away
    meanwhile is not the step's fault.
    """
    connection = connections[database]
    try:
        if connection.connection is not None and not connection.is_usable():
            connection.close()
        connection.ensure_connection()
    except (OperationalError, InterfaceError) as exc:
        raise CheckpointFailed(f"the database cannot be reached: {exc}") from exc
