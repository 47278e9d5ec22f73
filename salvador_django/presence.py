"""Workers make themselves known: a row per process that runs tasks, fresh at each beat.

A ``runworkflows`` worker (and each child of a process pool) registers when it
starts, beats with its leases' heartbeat (what it runs now, its last-seen time) and
removes its row when it stops. A Celery worker process registers when it first runs
a task, and beats from a thread of its own. A row not seen for a lease is a worker
that died (``WorkerProcess.objects.gone()``); a sweep forgets it an hour later.

Nothing here ever fails a worker: a write that fails is logged and tried at the
next beat.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from importlib import metadata
from typing import Any

from django.db import DatabaseError, connections
from django.db.models.functions import Now

from salvador_django.clock import now_plus
from salvador_django.conf import get_settings
from salvador_django.leases import Lease
from salvador_django.models import WORKER_NAME_MAX_LENGTH, WorkerKind, WorkerProcess

logger = logging.getLogger("salvador_django")

#: How long the row of a worker that stopped beating is kept, to show it gone.
GONE_KEPT = timedelta(hours=1)

try:
    VERSION = metadata.version("salvador-django")
except metadata.PackageNotFoundError:  # run from a source tree that is not installed
    VERSION = "unknown"


class Presence:
    """One process's row in the workers table."""

    def __init__(
        self,
        database: str,
        name: str,
        *,
        kind: str = WorkerKind.WORKER,
        queue: str = "",
        concurrency: int = 1,
        workflows: Sequence[str] = (),
    ) -> None:
        self.database = database
        self.name = name[:WORKER_NAME_MAX_LENGTH]
        self.fields = {
            "kind": kind,
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "version": VERSION[:32],
            "queue": queue[:200],
            "concurrency": concurrency,
            "workflows": sorted(workflows),
        }

    def _rows(self) -> Any:
        return WorkerProcess.objects.using(self.database).filter(name=self.name)

    def register(self) -> None:
        """Write this process's row (again, if it has one from a process of the same
        name: the pid was reused)."""
        try:
            self._rows().delete()
            WorkerProcess.objects.using(self.database).create(
                name=self.name, started_at=Now(), last_seen_at=Now(), **self.fields
            )
        except DatabaseError as exc:
            logger.warning("salvador: worker %s cannot register (%s)", self.name, exc)

    def beat(self, leases: Iterable[Lease]) -> None:
        """This process is alive and runs the tasks of ``leases``."""
        running = [_running(lease) for lease in leases]
        try:
            if not self._rows().update(last_seen_at=Now(), running=running):
                self.register()  # forgotten (gone for an hour, deleted in the admin)
                self._rows().update(running=running)
        except DatabaseError as exc:
            logger.warning("salvador: worker %s cannot say it is alive (%s)", self.name, exc)

    def leave(self) -> None:
        """This process stops: its row goes."""
        try:
            self._rows().delete()
        except DatabaseError as exc:
            logger.warning("salvador: worker %s cannot remove its row (%s)", self.name, exc)


def forget_gone(database: str) -> int:
    """Delete the rows of workers gone for longer than :data:`GONE_KEPT`; how many."""
    silent_for = get_settings().LEASE_SECONDS + GONE_KEPT.total_seconds()
    stale = WorkerProcess.objects.using(database).filter(last_seen_at__lt=now_plus(-silent_for))
    deleted, _ = stale.delete()
    return deleted


def _running(lease: Lease) -> dict[str, Any]:
    task = lease.task
    if task is None:
        return {"task": str(lease.task_id), "workflow": "", "step": ""}
    return {"task": str(task.id), "workflow": task.workflow, "step": task.step_name}


class BeatingPresence:
    """A presence that beats from a thread of its own, for a process with no worker's
    maintenance thread (a Celery worker): started by the first task it runs."""

    def __init__(self, presence: Presence, every: float) -> None:
        self.presence = presence
        self.every = every
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, lease: Lease) -> Iterator[None]:
        """Within it, this process runs the task of ``lease`` (and beats meanwhile)."""
        with self._lock:
            self._held[lease.token] = lease
            start = self._thread is None
            if start:
                self._thread = threading.Thread(
                    target=self._beat, name="salvador-presence", daemon=True
                )
        if start:
            self.presence.register()
            assert self._thread is not None
            self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(lease.token, None)

    def _beat(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.every):
            with self._lock:
                held = list(self._held.values())
            self.presence.beat(held)
            connections[self.presence.database].close()


_celery: BeatingPresence | None = None
_celery_lock = threading.Lock()


def celery_presence(name: str) -> BeatingPresence:
    """This Celery worker process's presence (one per process, made on first use)."""
    global _celery
    with _celery_lock:
        if _celery is None or _celery.presence.fields["pid"] != os.getpid():  # forked
            settings = get_settings()
            presence = Presence(settings.DATABASE, name, kind=WorkerKind.CELERY, queue="celery")
            _celery = BeatingPresence(presence, settings.LEASE_SECONDS / 3)
        return _celery


def leave_celery() -> None:
    """This Celery worker process stops: its row, if it made one, goes."""
    with _celery_lock:
        if _celery is not None and _celery.presence.fields["pid"] == os.getpid():
            _celery.presence.leave()
