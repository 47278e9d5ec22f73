"""The diamond workflow of the fault-injection run: ``chaos-diamond``.

``start``, then ``b1``, ``b2``, ``b3`` and ``b4`` at the same time (a worker's
branch threads), then ``join``. Each step appends a line to the diamond's log
(``CHAOS_DIAMOND_LOG``) as it starts, as the three-step workflow's steps do, works
(sleeps ``body["work"][name]``) and appends a ``done`` line when its function
returns. ``start``, ``b1``, ``b2`` and ``join`` are atomic and write an ``Effect``
row, committed with their checkpoint or not at all; ``b3`` and ``b4`` are not, so
they sleep side by side with the others (an atomic step of a graph holds the task's
checkpoint lock while it runs). Each branch returns ``[number, name]``; ``join``
returns the branches' outputs as it found them in ``task.outputs``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.faults.diamond_checks import ATOMIC, BRANCHES, WORKFLOW, branch_output, index
from benchmarks.faults.journal import append
from benchmarks.faults.models import Effect
from salvador_django import Workflow
from salvador_django.models import Task

LOG = "CHAOS_DIAMOND_LOG"


def _run(task: Task) -> None:
    """Log the start, work, write the effect (atomic steps), log the end."""
    name = task.step_name
    step = index(name)
    claimed = task.updated_at.timestamp()
    append(LOG, {"t": time.time(), "task": str(task.id), "step": step, "attempt": task.attempt,
                 "pid": os.getpid(), "token": task.claimed_by, "claimed": claimed,
                 "due": task.run_after.timestamp()})  # fmt: skip
    time.sleep(task.body["work"][name])
    if name in ATOMIC:
        Effect.objects.create(
            task_id=task.id, step=step, token=task.claimed_by, pid=os.getpid(), at=time.time()
        )
    append(LOG, {"event": "done", "t": time.time(), "task": str(task.id), "step": step,
                 "attempt": task.attempt, "token": task.claimed_by})  # fmt: skip


def _branch(task: Task) -> list[Any]:
    _run(task)
    return branch_output(task.body["number"], task.step_name)


def _join(task: Task) -> dict[str, Any]:
    seen = {name: task.outputs.get(name) for name in BRANCHES}
    _run(task)
    return seen


diamond = Workflow(WORKFLOW)
diamond.step("start", _run, after=[], atomic=True)
for _name in BRANCHES:
    diamond.step(_name, _branch, after="start", atomic=_name in ATOMIC)
diamond.step("join", _join, after=list(BRANCHES), atomic=True)
