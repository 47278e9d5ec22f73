"""The threads that run a graph task's parallel steps, kept between tasks.

A thread keeps its database connection while it has work; one that stays idle for
``IDLE_SECONDS`` (or is told to stop) closes its connections and ends, so no
connection outlives the work that needed it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, connections

logger = logging.getLogger("salvador_django")

IDLE_SECONDS = 5.0
#: A connection left unused this long is checked before a job uses it: its server may
#: have restarted meanwhile (a runner thread learns it from its next claim instead).
CHECK_AFTER_IDLE_SECONDS = 1.0
_STOP = None


class BranchPool:
    """Up to ``size`` threads running the jobs handed to :meth:`run`."""

    def __init__(self, size: int, name: str = "salvador-branch") -> None:
        self.size = max(1, size)
        self.name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._unfinished = 0  # jobs handed over and not done: each needs a thread

    def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` in a thread of the pool (it must catch its own exceptions)."""
        with self._lock:
            self._jobs.put(job)
            self._unfinished += 1
            if self._unfinished > len(self._threads) and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.add(thread)
                thread.start()

    def replace_one(self) -> None:
        """A thread was let go (its step hung): the pool may start one more."""
        with self._lock:
            self.size += 1
            self._unfinished -= 1

    def close(self) -> None:
        """Stop every thread once the jobs handed over are done; each closes its connections."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(_STOP)
        for thread in threads:
            thread.join(timeout=5)  # one a hung step holds is let go

    def _serve(self) -> None:
        me = threading.current_thread()
        idle_since = time.monotonic()
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    with self._lock:
                        if not self._jobs.empty():
                            continue
                        self._threads.discard(me)
                        return
                if job is _STOP:
                    with self._lock:
                        self._threads.discard(me)
                    return
                _fresh_connections(idle_since)
                try:
                    job()
                except Exception:  # a job catches its own; this keeps the thread alive
                    logger.exception("salvador: a parallel step's thread failed")
                with self._lock:
                    self._unfinished -= 1
                idle_since = time.monotonic()
        finally:
            connections.close_all()


def _fresh_connections(idle_since: float) -> None:
    """Before a job: close the thread's connections that are broken or too old.

    Those that errored or outlived ``CONN_MAX_AGE`` (as Django does between
    requests), and, after an idle spell, those whose server no longer answers.
    """
    close_old_connections()
    if time.monotonic() - idle_since < CHECK_AFTER_IDLE_SECONDS:
        return
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            connection.close()
