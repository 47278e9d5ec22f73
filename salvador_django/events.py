"""Events: the latest values a task's steps publish (``task.set_event``), read from outside.

:func:`get_event` returns an event's value, waiting for one up to a timeout. Readers
are woken, not left to poll, where a channel exists: PostgreSQL's ``NOTIFY`` (sent in
the step's commit, so it arrives when the value is visible) and, with the Redis
queue, a Redis channel published to after the commit. Elsewhere (SQLite alone) a
waiting reader looks again every few tens of milliseconds, backing off to half a
second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connections, transaction

from salvador_django.conf import get_settings
from salvador_django.models import Event, Task
from salvador_django.payloads import seconds_of

logger = logging.getLogger("salvador_django")

CHANNEL = "salvador_events"
_POLL_FIRST_SECONDS = 0.02
_POLL_MAX_SECONDS = 0.5
_RAISE: Any = object()
_MAX_TIMEOUT_SECONDS = 24 * 3600.0  # a reader waits a day at most


def announce(database: str, task_id: Any, keys: Sequence[str]) -> None:
    """Wake the readers of ``keys`` of the task once the current transaction commits."""
    connection = connections[database]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # delivered at the commit, not before
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(task_id)])
    if get_settings().QUEUE == "redis":
        transaction.on_commit(lambda: _publish(task_id), using=database, robust=True)


def get_event(
    task_id: Any, key: str, *, timeout: float | timedelta | None = None, default: Any = _RAISE
) -> Any:
    """The latest value the task published under ``key`` (``task.set_event``).

    With ``timeout`` (seconds or a ``timedelta``), waits up to that long for a first
    value. Without one, and no value, returns ``default``, or raises
    ``Event.DoesNotExist`` when none is given. Raises ``Task.DoesNotExist`` for an
    unknown task.
    """
    seconds = _timeout_seconds(timeout)
    database = get_settings().DATABASE
    found = _read(database, task_id, key)
    if found is None and seconds:
        with _wake_ups(database, task_id) as wait:
            deadline = time.monotonic() + seconds
            found = _read(database, task_id, key)  # set before the channel was open
            while found is None and (left := deadline - time.monotonic()) > 0:
                wait(left)
                found = _read(database, task_id, key)
    if found is not None:
        return found[0]
    if not Task.objects.using(database).filter(id=task_id).exists():
        raise Task.DoesNotExist(f"Task {task_id} does not exist.")
    if default is _RAISE:
        waited = f" within {seconds:g}s" if seconds else ""
        raise Event.DoesNotExist(f"Task {task_id} has published no event {key!r}{waited}.")
    return default


def _read(database: str, task_id: Any, key: str) -> tuple[Any] | None:
    try:
        row = (
            Event.objects.using(database)
            .filter(task_id=task_id, key=key)
            .values_list("id", "value")
            .first()
        )
    except ValidationError as exc:
        raise Task.DoesNotExist(f"{task_id!r} is not a task id.") from exc
    return None if row is None else (row[1],)


def _timeout_seconds(timeout: float | timedelta | None) -> float:
    return 0.0 if timeout is None else seconds_of(timeout, "timeout", most=_MAX_TIMEOUT_SECONDS)


@contextmanager
def _wake_ups(database: str, task_id: Any) -> Iterator[Any]:
    """A ``wait(seconds)`` that returns when the task may have published something."""
    if connections[database].vendor == "postgresql":
        with _listening(database, task_id) as wait:
            yield wait
    elif get_settings().QUEUE == "redis":
        with _subscribed(task_id) as wait:
            yield wait
    else:
        yield _backing_off()


def _backing_off() -> Any:
    pause = _POLL_FIRST_SECONDS

    def wait(left: float) -> None:
        nonlocal pause
        time.sleep(min(pause, left))
        pause = min(pause * 2, _POLL_MAX_SECONDS)

    return wait


@contextmanager
def _listening(database: str, task_id: Any) -> Iterator[Any]:
    wrapper = connections[database]
    connection: Any = wrapper.get_new_connection(wrapper.get_connection_params())
    if not hasattr(connection, "notifies"):  # psycopg2: poll instead
        connection.close()
        yield _backing_off()
        return
    try:
        connection.autocommit = True
        connection.execute(f"LISTEN {CHANNEL}")

        def wait(left: float) -> None:
            # A notification of another task ends the wait too: the reader looks again.
            for _notify in connection.notifies(timeout=min(left, 1.0), stop_after=1):
                return

        yield wait
    finally:
        connection.close()


def _channel(task_id: Any) -> str:
    return f"{get_settings().KEY_PREFIX}events:{task_id}"


def _redis() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection(get_settings().REDIS_CONNECTION)


@contextmanager
def _subscribed(task_id: Any) -> Iterator[Any]:
    try:
        pubsub = _redis().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(_channel(task_id))
    except Exception as exc:  # Redis down: a reader still gets its value, later
        logger.warning("salvador: cannot subscribe to event wake-ups (%s); polling", exc)
        yield _backing_off()
        return
    try:

        def wait(left: float) -> None:
            pubsub.get_message(timeout=min(left, 1.0))

        yield wait
    finally:
        pubsub.close()


def _publish(task_id: Any) -> None:
    try:
        _redis().publish(_channel(task_id), "1")
    except Exception as exc:  # readers find the value when they look again
        logger.warning("salvador: cannot publish an event wake-up (%s)", exc)
