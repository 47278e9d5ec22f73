"""A backend for Django's tasks API (``django.tasks``, or the ``django_tasks`` backport):
``TASKS = {"default": {"BACKEND": "salvador_django.tasks.SalvadorBackend"}}``.

The backend is loaded on first use, so that :mod:`salvador_django.tasks.names` imports
where Django's tasks API is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from salvador_django.tasks.backend import SalvadorBackend, SalvadorTask, retrying

__all__ = ["SalvadorBackend", "SalvadorTask", "retrying"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from salvador_django.tasks import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
