"""The queue protocol: a source of "look at task X" hints and of claimed tasks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar
from uuid import UUID

from salvador_django.conf import QUEUE_ALIASES

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

    from salvador_django.models import Task


@dataclass(frozen=True)
class Entry:
    """What a queue knows of a task: enough to route it, never its state."""

    task_id: UUID
    workflow: str
    priority: int
    run_after: datetime | None  # None: due now

    @classmethod
    def of(cls, task: Task, *, scheduled: bool = False) -> Entry:
        """The entry of ``task``: due now, or at its ``run_after`` when ``scheduled``.

        "Due now" is decided by whoever made the task due, never by comparing clocks:
        the row's ``run_after`` comes from the database's clock, not this process's.
        """
        run_after = task.run_after if scheduled and isinstance(task.run_after, datetime) else None
        return cls(task.id, task.workflow, task.priority, run_after)


class Queue(ABC):
    """Where workers find work. Entries are hints; the database is the truth.

    ``claim`` returns tasks already claimed in the database (a conditional update), so
    a duplicate entry is harmless and a lost one is recovered by :meth:`reannounce`.
    """

    #: True when :meth:`claim` wakes up as soon as a task is pushed (no polling delay).
    supports_wakeup: ClassVar[bool] = False

    def __init__(self, database: str) -> None:
        self.database = database

    @classmethod
    def label(cls) -> str:
        """How settings name this queue: its alias (``"redis"``) or its dotted path."""
        path = f"{cls.__module__}.{cls.__qualname__}"
        return next((alias for alias, known in QUEUE_ALIASES.items() if known == path), path)

    @abstractmethod
    def push(self, entries: Sequence[Entry]) -> None:
        """Announce tasks that are due now; called after their transaction commits."""

    def schedule(self, entries: Sequence[Entry]) -> None:
        """Announce tasks that become due at their ``run_after``; by default, push them."""
        self.push(entries)

    @abstractmethod
    def claim(
        self,
        workflows: Sequence[str],
        timeout: float,
        *,
        token: str,
        lease_seconds: float,
        limit: int = 1,
    ) -> list[Task]:
        """Claim up to ``limit`` due tasks for ``token``, waiting at most ``timeout`` seconds."""

    def reannounce(self, workflows: Sequence[str] | None = None) -> int:
        """Re-announce due pending tasks (of ``workflows``) that no entry carries; how many."""
        return 0

    def wake(self) -> None:  # noqa: B027 - optional hook
        """Wake this process's waiting ``claim`` calls (used on shutdown)."""

    def came_back(self) -> bool:
        """True once after the queue became reachable again following a failure.

        The worker sweeps at once when it is, so that the tasks announced in vain
        during the outage do not wait for the next sweep. Reading it clears it.
        """
        return False

    def connections_held(self) -> int:
        """Database connections this queue holds of its own in each worker process."""
        return 0

    def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~salvador_django.exceptions.QueueUnavailable` if the queue's own
        server (beyond the database) cannot be reached; quick (a health check's)."""

    def depth(self, workflow: str) -> dict[str, int] | None:
        """Entries waiting for ``workflow``, by kind, if this queue can tell (else None)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads the queue holds."""

    @classmethod
    def check(cls, database: str) -> list[CheckMessage]:
        """System-check messages about this queue's configuration."""
        return []
