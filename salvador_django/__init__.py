"""salvador-django: durable, ordered, observable workflows for Django."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from salvador_django.definitions import Workflow
from salvador_django.retry import Retry
from salvador_django.schedules import Schedule
from salvador_django.status import TaskStatus

if TYPE_CHECKING:
    from salvador_django.events import get_event
    from salvador_django.submission import get_task, send_signal, submit

__all__ = [
    "Retry", "Schedule", "TaskStatus", "Workflow", "get_event", "get_task", "send_signal", "submit",
]  # fmt: skip
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # These need the models, which Django loads after this package.
    if name in {"submit", "get_task", "send_signal"}:
        from salvador_django import submission

        return getattr(submission, name)
    if name == "get_event":
        from salvador_django import events

        return events.get_event
    raise AttributeError(f"module 'salvador_django' has no attribute {name!r}")
