"""Structured logs: every record of the app says which task, step and worker it is about.

Records of the ``salvador_django`` logger carry ``task_id``, ``workflow``, ``step``,
``attempt`` and ``worker`` as attributes (``extra`` fields; None where they do not
apply, as in a worker's own messages). A JSON formatter shows them as they are. To
give a step's own records the same fields, add :class:`TaskContextFilter` to the
handler that writes them (see the observability docs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

#: The fields every record of the app carries.
FIELDS = ("task_id", "workflow", "step", "attempt", "worker")

_current: ContextVar[dict[str, Any] | None] = ContextVar("salvador_log_context", default=None)

__all__ = ["FIELDS", "TaskContextFilter", "current", "install", "task_context"]


class TaskContextFilter(logging.Filter):
    """Adds the task, step and worker being run in this thread to each record it sees.

    A record that already has one of the fields (an ``extra`` of its own) keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get() or {}
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        return True


def current() -> dict[str, Any]:
    """What the records logged here now are about (a copy)."""
    return dict(_current.get() or {})


@contextmanager
def task_context(**fields: Any) -> Iterator[None]:
    """Within it, this thread's records carry ``fields`` (over those set around it)."""
    token = _current.set({**(_current.get() or {}), **fields})
    try:
        yield
    finally:
        _current.reset(token)


def install() -> None:
    """Put the filter on the app's logger (once; at start, by the app's ``ready()``)."""
    logger = logging.getLogger("salvador_django")
    if not any(isinstance(existing, TaskContextFilter) for existing in logger.filters):
        logger.addFilter(TaskContextFilter())
