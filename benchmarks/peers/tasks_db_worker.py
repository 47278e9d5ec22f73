"""The django-tasks section's peer: django-tasks-db's ``db_worker`` on the same database.

The tasks are ``benchmarks.bench_tasks.theirs``, enqueued to the task backend
``database`` (django-tasks-db's ``DatabaseBackend``, ``benchmarks.settings``) in the
measuring process; its rows are ``DBTaskResult``. ``db_worker`` runs one task at a time
in one process (it has no concurrency setting); ``--batch`` exits once nothing is left.
Between two idle looks at the table it sleeps ``--interval`` (its default 1 s): the
section gives it our ``POLL_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from benchmarks.servers import REPO

if TYPE_CHECKING:
    from benchmarks.measure import Measurement

NAME = "django-tasks-db"
DONE = "SUCCESSFUL"


def why_not() -> str | None:
    """Why the peer cannot run here (django-tasks-db missing), or None."""
    from django.conf import settings

    configured = getattr(settings, "TASKS", {})
    if "default" not in configured:
        return "Django's tasks API is not installed (Django 6, or pip install django-tasks)"
    if "database" not in configured:
        return "django-tasks-db is not installed (pip install django-tasks-db)"
    return None


def task() -> Any:
    from benchmarks.bench_tasks import theirs

    return theirs


def version() -> str:
    from importlib.metadata import version

    return version("django-tasks-db")


def clear() -> None:
    """Delete every task result of the peer."""
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()


def by_status() -> dict[str, int]:
    """The peer's task results by status ({"SUCCESSFUL": 2000})."""
    from django.db.models import Count
    from django_tasks_db.models import DBTaskResult

    rows = DBTaskResult.objects.values("status").annotate(n=Count("id"))
    return {str(row["status"]): row["n"] for row in rows}


def command(interval: float, *extra: str) -> list[str]:
    """``db_worker`` on the ``database`` backend's queue ``default``, without its random
    start-up delay and without the autoreloader."""
    return [
        sys.executable, "-m", "django", "db_worker", "--backend", "database",
        "--queue-name", "default", "--interval", str(interval), "--no-startup-delay",
        "--no-reload", "--verbosity", "0", *extra,
    ]  # fmt: skip


def burst(m: Measurement, name: str, interval: float, timeout: float) -> tuple[float, float]:
    """``db_worker --batch`` from spawn to exit: its wall time and CPU time, in seconds."""
    return m.run_burst(name, timeout, 1, command=command(interval, "--batch"))


@contextlib.contextmanager
def running(m: Measurement, name: str, interval: float) -> Iterator[None]:
    """A long-running ``db_worker`` for the block; SIGTERM must make it exit 0."""
    from benchmarks.measure import stop_process

    path = m.workdir / f"{name}.log"
    with path.open("w") as output:
        proc = subprocess.Popen(
            command(interval), env=m.env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            yield
        finally:
            code = stop_process(proc)
    m.result.setdefault("exit_codes", {})[name] = code
    if code != 0:
        m.result["errors"].append(f"{name}: db_worker exited {code}:\n{path.read_text()[-3000:]}")
