"""The run's workflows: ``chaos``, three steps, each logging its execution and writing
its effect; and the waiting workflow (``chaos-waits``, in :mod:`.waiting`).

Each step of ``chaos`` first appends one line to the execution log (a file outside
every database, see :mod:`.journal`): every execution is there, even one whose
process dies a moment later. Then it does its "work" (a short sleep taken from the
body) and writes an ``Effect`` row. The steps are atomic, so that row commits with
the step's checkpoint or not at all.
"""

from __future__ import annotations

import os
import time

from benchmarks.faults import waiting  # noqa: F401 - registers the waiting workflow
from benchmarks.faults.journal import append
from benchmarks.faults.models import Effect
from salvador_django import Workflow
from salvador_django.models import Task

STEPS = ("one", "two", "three")


def record(task: Task) -> None:
    append(
        "CHAOS_LOG",
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
            "due": task.run_after.timestamp(),
        },
    )
    time.sleep(task.body["work"][task.step])
    Effect.objects.create(
        task_id=task.id, step=task.step, token=task.claimed_by, pid=os.getpid(), at=time.time()
    )


chaos = Workflow("chaos")
for name in STEPS:
    chaos.step(name, record, atomic=True)  # the default retry policy
