"""The run's workflows: ``chaos``, three steps, each logging its execution and writing
its effect; ``chaos-child``, one such step, which returns ``[body["parent"],
body["n"]]``; the waiting workflow (``chaos-waits``, in :mod:`.waiting`); and the
fan-out workflow, whose parents start children of ``chaos-child`` (``chaos-fan-out``,
in :mod:`.fan_out`); the diamond workflow (``chaos-diamond``, in :mod:`.diamond`); the
traced workflow (``chaos-traced``, in :mod:`.traced`); and
``chaos-scheduled``, one such step, which nobody submits: its schedules do (three every
second, one every even second: :data:`.scheduled_checks.SCHEDULES`), ticked by the
run's workers. It logs to its own log (``CHAOS_SCHEDULED_LOG``).

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
from datetime import timedelta

from benchmarks.faults import diamond, fan_out, traced, waiting  # noqa: F401 - registers them
from benchmarks.faults.fan_out import LOG as CHILDREN_LOG
from benchmarks.faults.fan_out_checks import CHILD
from benchmarks.faults.journal import append
from benchmarks.faults.models import Effect
from benchmarks.faults.scheduled_checks import EVEN_SECONDS, SCHEDULED_LOG, SCHEDULES
from benchmarks.faults.scheduled_checks import WORKFLOW as SCHEDULED
from salvador_django import Schedule, Workflow
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


#: How long the scheduled step works: on SQLite, where it holds the write lock meanwhile,
#: as little as the three-step workflow's least.
SCHEDULED_WORK = 0.002 if os.environ.get("CHAOS_DB") == "sqlite" else 0.01
scheduled = Workflow(
    SCHEDULED,
    schedules=[
        Schedule(
            EVEN_SECONDS if period == 2 else None,
            None if period == 2 else timedelta(seconds=period),
            name=name,
            body={"work": [SCHEDULED_WORK]},
            meta={"schedule": name},
            catch_up="latest",
        )
        for name, period in SCHEDULES.items()
    ],
)


@scheduled.step("run", atomic=True)
def run_scheduled(task: Task) -> None:
    record(task, SCHEDULED_LOG)
