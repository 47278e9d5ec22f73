"""The run's workflows: ``chaos``, three steps, each logging its execution and writing
its effect; ``chaos-child``, one such step, which returns ``[body["parent"],
body["n"]]``; the waiting workflow (``chaos-waits``, in :mod:`.waiting`); and the
fan-out workflow, whose parents start children of ``chaos-child`` (``chaos-fan-out``,
in :mod:`.fan_out`); and the diamond workflow (``chaos-diamond``, in :mod:`.diamond`).

Each step of ``chaos`` first appends one line to the execution log (a file outside
every database, see :mod:`.journal`): every execution is there, even one whose
process dies a moment later. Then it does its "work" (a short sleep taken from the
body) and writes an ``Effect`` row. The steps are atomic, so that row commits with
the step's checkpoint or not at all. ``chaos-child`` logs to the children's log
(``CHAOS_CHILDREN_LOG``), so that the checks of ``chaos`` see only its own tasks.
"""

from __future__ import annotations

import os
import time

from benchmarks.faults import diamond, fan_out, waiting  # noqa: F401 - registers their workflows
from benchmarks.faults.fan_out import LOG as CHILDREN_LOG
from benchmarks.faults.fan_out_checks import CHILD
from benchmarks.faults.journal import append
from benchmarks.faults.models import Effect
from salvador_django import Workflow
from salvador_django.models import Task

STEPS = ("one", "two", "three")


def record(task: Task, log: str = "CHAOS_LOG") -> None:
    append(
        log,
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


child = Workflow(CHILD)


@child.step("run", atomic=True)
def run_child(task: Task) -> list[int]:
    record(task, CHILDREN_LOG)
    return [task.body["parent"], task.body["n"]]
