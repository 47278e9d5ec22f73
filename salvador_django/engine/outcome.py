"""How running a claimed task ended, and the engine's own error."""

from __future__ import annotations

import enum
import logging

from salvador_django.exceptions import SalvadorError
from salvador_django.models import Task

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
