"""Status enums of tasks and step runs."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class TaskStatus(models.TextChoices):
    """Where a task is in its life."""

    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    WAITING = "waiting", _("Waiting")
    PAUSED = "paused", _("Paused")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


#: The statuses a task ends in (until an operator requeues it).
FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
#: The statuses of a task that has not ended yet.
UNFINISHED = (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.WAITING, TaskStatus.PAUSED)


class CompensationStatus(models.TextChoices):
    """Where a task is in undoing its completed steps after it failed or was cancelled."""

    NONE = "", _("None")
    RUNNING = "running", _("Compensating")
    COMPLETED = "completed", _("Compensated")
    FAILED = "failed", _("Compensation failed")


class StepRunStatus(models.TextChoices):
    """How one attempt of one step ended."""

    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")  # its condition (``when``) was false


class WaitKind(models.TextChoices):
    """What a step waited for."""

    SIGNAL = "signal", _("Signal")
    SLEEP = "sleep", _("Sleep")
    CHILDREN = "children", _("Children")


class WaitOutcome(models.TextChoices):
    """How a step's wait ended ("" while the task still waits there)."""

    OPEN = "", _("Waiting")
    RECEIVED = "received", _("Received")
    TIMED_OUT = "timed out", _("Timed out")
    SLEPT = "slept", _("Slept")
    FINISHED = "finished", _("Children finished")
