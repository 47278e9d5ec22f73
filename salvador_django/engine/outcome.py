"""How running a claimed task ended, and the engine's own error."""

from __future__ import annotations

import enum
import logging
import time
from typing import TYPE_CHECKING, Any

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


def call_step(attempt: Attempt) -> Any:
    """Run the attempt's step; a step that returned after its timeout failed all the same."""
    step = attempt.step
    output = step.fn(attempt.task)
    if step.timeout is not None and time.monotonic() - attempt.began > step.timeout:
        raise StepTimeout(f"Step {step.name!r} ran longer than its timeout of {step.timeout}s.")
    return output
