"""The run's workflow: three steps, each logging its execution and writing its effect.

Each step first appends one line to the execution log (a file outside every
database, opened with ``O_APPEND``, written in one ``write``): every execution is
there, even one whose process dies a moment later. Then it does its "work" (a
short sleep taken from the body) and writes an ``Effect`` row. The steps are
atomic, so that row commits with the step's checkpoint or not at all.
"""

from __future__ import annotations

import json
import os
import threading
import time

from benchmarks.faults.models import Effect
from salvador_django import Workflow
from salvador_django.models import Task

STEPS = ("one", "two", "three")
_log_fd: int | None = None
_log_lock = threading.Lock()


def _log(line: dict[str, object]) -> None:
    global _log_fd
    with _log_lock:
        if _log_fd is None:
            _log_fd = os.open(os.environ["CHAOS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_log_fd, (json.dumps(line) + "\n").encode())


def record(task: Task) -> None:
    _log(
        {
            "t": time.time(),
            "task": str(task.id),
            "step": task.step,
            "attempt": task.attempt,
            "pid": os.getpid(),
            "token": task.claimed_by,
            # The claim's own time (the row's updated_at as the claim returned it):
            # it orders the claims of one task.
            "claimed": task.updated_at.timestamp(),
        }
    )
    time.sleep(task.body["work"][task.step])
    Effect.objects.create(
        task_id=task.id, step=task.step, token=task.claimed_by, pid=os.getpid(), at=time.time()
    )


chaos = Workflow("chaos")
for name in STEPS:
    chaos.step(name, record, atomic=True)  # the default retry policy
