"""A workflow's steps in words: what each waits for, its condition and its undo.

Shared by ``manage.py showworkflows`` and the admin's drawing of a workflow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from salvador_django.definitions import Step


def callable_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, or its repr (a ``functools.partial``)."""
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        return repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{qualname}" if module else str(qualname)


def waits_for(step: Step) -> str:
    """E.g. "after: a, b; after any: x, y; when: app.workflows.wanted", or "root"."""
    parts = []
    if step.after:
        parts.append(f"after: {', '.join(step.after)}")
    if step.after_any:
        parts.append(f"after any: {', '.join(step.after_any)}")
    if not parts:
        parts.append("root")
    if step.when is not None:
        parts.append(f"when: {callable_name(step.when)}")
    return "; ".join(parts)


def undo(step: Step) -> str:
    """E.g. "undo: app.workflows.release", or "" for a step without a compensation."""
    return f"undo: {callable_name(step.compensate)}" if step.compensate is not None else ""
