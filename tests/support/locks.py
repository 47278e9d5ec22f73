"""A task's row held by another connection, as a paused or busy worker's transaction holds it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction

from salvador_django.models import Task


@contextmanager
def row_held(
    database: str, task_id: Any, *, seconds: float = 30.0, **changes: Any
) -> Iterator[None]:
    """Another connection updates the task's row with ``changes`` and holds it, uncommitted,
    while the block runs (at most ``seconds``: then it commits)."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic(using=database):
                Task.objects.using(database).filter(id=task_id).update(**changes)
                held.set()
                done.wait(seconds)
        finally:
            connections[database].close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        if not held.wait(10):
            raise AssertionError(f"another connection could not take task {task_id}'s row")
        yield
    finally:
        done.set()
        holder.join()
