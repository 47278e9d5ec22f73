"""salvador-django: durable, ordered, observable workflows for Django."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from salvador_django.definitions import Workflow
from salvador_django.retry import Retry
from salvador_django.status import TaskStatus

if TYPE_CHECKING:
    from salvador_django.submission import get_task, submit

__all__ = ["Retry", "TaskStatus", "Workflow", "get_task", "submit"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # submit and get_task need the models, which Django loads after this package.
    if name in {"submit", "get_task"}:
        from salvador_django import submission

        return getattr(submission, name)
    raise AttributeError(f"module 'salvador_django' has no attribute {name!r}")
