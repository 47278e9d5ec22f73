"""Queues: where workers find work (the database itself, Redis, or a custom class)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.utils.module_loading import import_string

from salvador_django.conf import DISPATCHERS, get_settings, queue_path
from salvador_django.exceptions import ConfigurationError, QueueUnavailable
from salvador_django.queues.base import Entry, Queue
from salvador_django.transitions import tasks_due

if TYPE_CHECKING:
    from salvador_django.models import Task

__all__ = ["Entry", "Queue", "announce", "announce_on_commit", "get_queue", "queue_class"]

logger = logging.getLogger("salvador_django")

_queues: dict[tuple[str, str], Queue] = {}
_lock = threading.Lock()


def queue_class(name: str) -> type[Queue]:
    """The queue class that ``name`` (an alias or a dotted path) designates."""
    path = queue_path(name)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ConfigurationError(f"Cannot import the queue {name!r} ({path}): {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Queue)):
        raise ConfigurationError(f"{path} is not a salvador_django.queues.Queue subclass.")
    return cls


def get_queue(name: str | None = None) -> Queue:
    """The process-wide queue instance named ``name`` (default: ``SALVADOR["QUEUE"]``)."""
    settings = get_settings()
    key = (name or settings.QUEUE, settings.DATABASE)
    with _lock:
        queue = _queues.get(key)
        if queue is None:
            queue = _queues[key] = queue_class(key[0])(database=key[1])
        return queue


def reset_queues() -> None:
    """Close and forget every queue instance (settings changed, tests)."""
    with _lock:
        queues = list(_queues.values())
        _queues.clear()
    for queue in queues:
        queue.close()


def announce_on_commit(*tasks: Task, queue: Queue | None = None, scheduled: bool = False) -> None:
    """Announce ``tasks`` to ``queue`` (default: the configured one) after their commit.

    They are due now, or, with ``scheduled``, at their ``run_after``.
    """
    if not tasks:
        return
    entries = [Entry.of(task, scheduled=scheduled) for task in tasks]
    database = tasks[0]._state.db or get_settings().DATABASE
    transaction.on_commit(lambda: announce(entries, queue), using=database, robust=True)


def announce(entries: Sequence[Entry], queue: Queue | None = None) -> None:
    """Push due entries and schedule future ones; a failure is logged, never raised.

    The rows are already committed, so an entry that cannot be announced is only
    late: the queue's sweep finds it.
    """
    target = queue or get_queue()
    due = [e for e in entries if e.run_after is None]
    later = [e for e in entries if e.run_after is not None]
    try:
        if due:
            target.push(due)
        if later:
            target.schedule(later)
    except QueueUnavailable:
        pass  # the queue logged it once; its sweep announces these tasks later
    except Exception:
        logger.exception("salvador: could not announce %d task(s) to the queue", len(entries))
    dispatcher = get_settings().DISPATCH
    if dispatcher is not None:
        try:
            import_string(DISPATCHERS[dispatcher])(entries)
        except Exception:  # the broker is down: the beat sweep runs these tasks
            logger.exception(
                "salvador: could not dispatch %d task(s) to %s", len(entries), dispatcher
            )


@receiver(tasks_due)
def _announce_due(*, tasks: Sequence[Task], scheduled: bool = False, **kwargs: Any) -> None:
    """Announce the tasks a move made due (or, ``scheduled``, made), once it commits."""
    announce_on_commit(*tasks, scheduled=scheduled)


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in {"SALVADOR", "DATABASES", "CACHES"}:
        reset_queues()
