"""The fan-out workflow of the fault-injection run: ``chaos-fan-out``.

A parent (``chaos-fan-out``) has two steps:

- ``spread`` starts ``CHILDREN`` children of ``chaos-child``, one per entry of
  ``body["work"]``, and waits for them: through ``task.map`` with keys
  (``item-0``, ``item-1``, ...) when ``body["map"]``, else through ``start_child``
  (positional keys ``#1``, ``#2``, ...) and ``wait_for_children``. It keeps their
  results in its state;
- ``assemble`` returns them: the parent's result.

Its children (``chaos-child``, in :mod:`.workflows`) log their executions to the
children's log (``CHAOS_CHILDREN_LOG``); each run of a parent's step appends to the
same log a line as it starts (``event``: ``parent``), with when its claim took the
task: when a parent resumed.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.faults.fan_out_checks import CHILD, WORKFLOW, child_body, child_key
from benchmarks.faults.journal import append
from salvador_django import Workflow
from salvador_django.models import Task

LOG = "CHAOS_CHILDREN_LOG"


def log_start(task: Task) -> None:
    append(
        LOG,
        {
            "event": "parent",
            "t": time.time(),
            "task": str(task.id),
            "step": task.step,
            "pid": os.getpid(),
            "token": task.claimed_by,
            "claimed": task.updated_at.timestamp(),
            "due": task.run_after.timestamp(),
        },
    )


fan_out = Workflow(WORKFLOW)


@fan_out.step("spread")
def spread(task: Task) -> None:
    log_start(task)
    number, works = task.body["number"], task.body["work"]
    bodies = [child_body(number, n, work) for n, work in enumerate(works)]
    if task.body["map"]:
        keys = [child_key(n, use_map=True) for n in range(len(bodies))]
        task.state["results"] = task.map(CHILD, bodies, keys=keys)
    else:
        children = [task.start_child(CHILD, body) for body in bodies]
        task.state["results"] = task.wait_for_children(children)


@fan_out.step("assemble")
def assemble(task: Task) -> list[Any]:
    log_start(task)
    results: list[Any] = task.state["results"]
    return results
