"""The traced workflow of the fault-injection run: ``chaos-traced``.

Three steps that work (sleep ``body["work"][i]``) and commit nothing but their
checkpoint. Every process of the run exports its spans (:mod:`.spans`); the run
submits the tasks (:mod:`.traced_load`).
"""

from __future__ import annotations

import time

from benchmarks.faults.traced_checks import STEPS, WORKFLOW
from salvador_django import Workflow
from salvador_django.models import Task


def _work(task: Task) -> None:
    time.sleep(task.body["work"][task.step])


traced = Workflow(WORKFLOW)
for _name in STEPS:
    traced.step(_name, _work)
