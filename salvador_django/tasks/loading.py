"""Loading a Django task by the module path a row stores, and its retry policy."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

import salvador_django.tasks.compat as compat
from salvador_django.exceptions import PermanentError
from salvador_django.retry import Retry


def load_task(path: str) -> compat.Task[Any, Any]:
    """The Django task at ``path``; ``PermanentError`` if there is none (the row is not
    run, whatever object the path names)."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise PermanentError(f"Cannot import the task {path!r}: {exc}") from exc
    if not isinstance(found, compat.Task):
        raise PermanentError(
            f"{path!r} is a {type(found).__name__}, not a Django task: it is not run."
        )
    return found


def retry_of(django_task: compat.Task[Any, Any]) -> Retry | None:
    """A task's own retry policy, from ``@task(retry=...)`` (:class:`SalvadorTask`)."""
    policy = getattr(django_task, "retry", None)
    return as_retry(policy, f"the retry of task {django_task.module_path!r}")


def as_retry(policy: Any, what: str) -> Retry | None:
    """``policy`` (None, a :class:`Retry` or a dict of its fields) as a Retry."""
    if policy is None or isinstance(policy, Retry):
        return policy
    if isinstance(policy, dict):
        try:
            return Retry(**policy)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"{what}: {exc}") from exc
    raise PermanentError(f"{what} must be a salvador_django.Retry or a dict, not {policy!r}.")
