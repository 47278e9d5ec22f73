"""What a worker knows of the Django task attempt it runs, kept on its task instance:
the attempts before it, when it started, and what it returned. The relay of Django's
signals builds the attempt's results from it without reading the rows again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from salvador_django.models import StepRun, Task


@dataclass
class Running:
    """A Django task's running attempt, as its worker knows it."""

    runs: list[StepRun]  # the attempts before it
    started_at: datetime
    value: Any = None  # what it returned, once it has


def begin(task: Task, running: Running) -> None:
    """``task`` (the worker's instance) runs the attempt ``running``."""
    task._running = running  # type: ignore[attr-defined]


def running_of(task: Task) -> Running | None:
    """The attempt the worker's ``task`` runs; None for a task read from the table."""
    found: Running | None = getattr(task, "_running", None)
    return found
