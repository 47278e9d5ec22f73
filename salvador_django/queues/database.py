"""The default queue: the task table itself.

Workers claim due rows with a conditional update (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL). Idle workers wait for a wake-up: within one process a push wakes one of
them directly; on PostgreSQL a ``NOTIFY`` reaches every listening worker process at
once, and wakes one thread in each.
Without a wake-up (SQLite across processes), they look again every poll interval.
Behind a transaction-pooling proxy, where notifications never arrive, the listener
finds out with a probe, warns once and stops: idle workers then poll.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import OperationalError, connections

from salvador_django.models import Task
from salvador_django.queues.base import Entry, Queue

logger = logging.getLogger("salvador_django")

CHANNEL = "salvador_tasks"
_LISTEN_RETRY_SECONDS = 5.0
_LISTEN_TIMEOUT_SECONDS = 0.25  # how soon the listener notices it should stop
_PROBE_TIMEOUT_SECONDS = 2.0  # how long a probe notification may take to arrive
_PROBE_PREFIX = "salvador-probe:"  # payloads of probes; they wake nobody


class WakeUp:
    """Wakes threads waiting for due tasks: one per notification, or all at once.

    A notification wakes one waiting thread, not all of them: woken together, every
    idle thread would run a claim for the one task, and the claims that find nothing
    would cost the one that does (two cores, one of them PostgreSQL's). A thread that
    woke and claimed a task wakes the next (:meth:`notify`): more may be due. A
    notification no thread waits for is kept for the next to wait, so a notification
    between a thread's claim and its wait is not lost.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0  # every notification
        self._broadcasts = 0  # those that wake everyone
        self._pending = 0  # notifications no waiting thread has taken yet
        self._waiting = 0

    @property
    def generation(self) -> int:
        """How many notifications there were (each moves it by one)."""
        return self._generation

    @property
    def broadcasts(self) -> int:
        """How many notifications woke every thread; what :meth:`wait` is given."""
        return self._broadcasts

    def notify(self) -> None:
        """Tasks are due: wake one waiting thread (or the next one to wait)."""
        with self._condition:
            self._generation += 1
            self._pending = min(self._pending + 1, max(self._waiting, 1))
            self._condition.notify()

    def notify_all(self) -> None:
        """Wake every waiting thread (the worker stops, say)."""
        with self._condition:
            self._generation += 1
            self._broadcasts += 1
            self._condition.notify_all()

    def wait(self, broadcasts: int, timeout: float) -> bool:
        """Sleep until a notification is taken, ``broadcasts`` moved, or ``timeout`` passed.

        True when woken (not timed out).
        """
        with self._condition:
            self._waiting += 1
            try:
                woken = self._condition.wait_for(
                    lambda: self._pending > 0 or self._broadcasts != broadcasts, timeout
                )
            finally:
                self._waiting -= 1
            if woken and self._broadcasts == broadcasts:
                self._pending -= 1
            return woken


class DatabaseQueue(Queue):
    """Claims due tasks straight from the task table."""

    supports_wakeup = True

    def __init__(self, database: str) -> None:
        super().__init__(database)
        self.wakeup = WakeUp()
        self._listener: _Listener | None = None
        self._listener_lock = threading.Lock()
        self._tasks = Task.objects.using(database)  # built once, not once per claim

    @property
    def _is_postgres(self) -> bool:
        return connections[self.database].vendor == "postgresql"

    def connections_held(self) -> int:
        """One on PostgreSQL: the connection that listens for notifications."""
        return 1 if self._is_postgres else 0

    def push(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        self.wakeup.notify()
        if self._is_postgres:
            with connections[self.database].cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, entries[0].workflow])

    def schedule(self, entries: Sequence[Entry]) -> None:
        """Nothing to do: the row's ``run_after`` is the schedule, and waiting workers poll."""

    def claim(
        self,
        workflows: Sequence[str],
        timeout: float,
        *,
        token: str,
        lease_seconds: float,
        limit: int = 1,
    ) -> list[Task]:
        seen = self.wakeup.broadcasts
        tasks = self._claim(workflows, token, lease_seconds, limit)
        if tasks or timeout <= 0:
            return tasks
        if self._is_postgres:
            self._ensure_listener(timeout)
        # An idle thread keeps its connection no longer than CONN_MAX_AGE says.
        connection = connections[self.database]
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        # Sleep until a push, a notification or wake() wakes this thread; look again
        # at once if one did, or leave the next look to the caller's next pop.
        if not self.wakeup.wait(seen, timeout):
            return []
        tasks = self._claim(workflows, token, lease_seconds, limit)
        if tasks:
            self.wakeup.notify()  # more may be due: the next idle thread looks too
        return tasks

    def _claim(
        self, workflows: Sequence[str], token: str, lease_seconds: float, limit: int
    ) -> list[Task]:
        try:
            return self._tasks.claim(workflows, token, lease_seconds, limit)
        except OperationalError as exc:
            if "locked" not in str(exc):  # SQLite's "database is locked": nothing was claimed
                raise
            logger.debug("salvador: claim met a locked database; will look again")
            return []

    def wake(self) -> None:
        self.wakeup.notify_all()

    def close(self) -> None:
        with self._listener_lock:
            if self._listener is not None:
                self._listener.stop()
                self._listener.join(timeout=5)
                self._listener = None
        self.wakeup.notify_all()

    def _ensure_listener(self, poll_interval: float) -> None:
        if self._listener is not None:
            return
        with self._listener_lock:
            if self._listener is None:
                self._listener = _Listener(self.database, self.wakeup, poll_interval)
                self._listener.start()


class _Listener(threading.Thread):
    """Listens on PostgreSQL for task notifications and wakes waiting workers."""

    def __init__(self, database: str, wakeup: WakeUp, poll_interval: float) -> None:
        super().__init__(name="salvador-listener", daemon=True)
        self.database = database
        self.wakeup = wakeup
        self.poll_interval = poll_interval  # for the warnings only
        self._stopping = threading.Event()
        self.listening = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        warned = False
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:
                self.listening.clear()
                if not warned:
                    logger.warning(
                        "salvador: cannot LISTEN on PostgreSQL (%s); idle workers fall back "
                        "to polling every POLL_INTERVAL",
                        exc,
                    )
                    warned = True
                self._stopping.wait(_LISTEN_RETRY_SECONDS)
            else:
                warned = False

    def _listen(self) -> None:
        wrapper = connections[self.database]
        connection: Any = wrapper.get_new_connection(wrapper.get_connection_params())
        if not hasattr(connection, "notifies"):  # psycopg2: no notification generator
            connection.close()
            logger.warning(
                "salvador: LISTEN/NOTIFY wake-ups need psycopg 3; idle workers poll every "
                "POLL_INTERVAL instead"
            )
            self._stopping.set()
            return
        try:
            connection.autocommit = True
            connection.execute(f"LISTEN {CHANNEL}")
            if not self._probe(connection):
                if not self._stopping.is_set():
                    logger.warning(
                        "salvador: LISTEN/NOTIFY does not reach this worker (is PostgreSQL "
                        "behind a transaction-pooling proxy such as PgBouncer?); idle workers "
                        "poll every POLL_INTERVAL (%gs)",
                        self.poll_interval,
                    )
                    self._stopping.set()  # for the life of the process: no retries
                return
            self.listening.set()
            logger.debug("salvador: listening for task notifications")
            while not self._stopping.is_set():
                for notify in connection.notifies(timeout=_LISTEN_TIMEOUT_SECONDS, stop_after=1):
                    if not notify.payload.startswith(_PROBE_PREFIX):
                        self.wakeup.notify()
        finally:
            self.listening.clear()
            connection.close()

    def _probe(self, connection: Any) -> bool:
        """Whether a notification sent from another connection reaches ``connection``.

        Behind a pooler in transaction mode (PgBouncer), ``LISTEN`` succeeds but binds
        a pooled server session that goes back to the pool at once, so notifications
        never arrive. The probe is sent on a connection of its own: a session receives
        its own notifications, which through a pooler would prove nothing.
        """
        payload = f"{_PROBE_PREFIX}{uuid.uuid4().hex}"
        wrapper = connections[self.database]
        sender: Any = wrapper.get_new_connection(wrapper.get_connection_params())
        try:
            sender.autocommit = True
            sender.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
        finally:
            sender.close()
        deadline = time.monotonic() + _PROBE_TIMEOUT_SECONDS
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            timeout = min(left, _LISTEN_TIMEOUT_SECONDS)
            for notify in connection.notifies(timeout=timeout, stop_after=1):
                if notify.payload == payload:
                    return True
                if not notify.payload.startswith(_PROBE_PREFIX):
                    self.wakeup.notify()  # a real task notification meanwhile
        return False
