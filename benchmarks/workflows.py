"""The ``bench`` workflow: three no-op steps; the first records when it started."""

from __future__ import annotations

import time

from salvador_django import Workflow
from salvador_django.models import Task

bench = Workflow("bench")


@bench.step("one")
def one(task: Task) -> None:
    """Record the wall-clock start of step 1 (the latency benchmark reads it)."""
    task.state["t1"] = time.time()


@bench.step("two")
def two(task: Task) -> None:
    """Do nothing."""


@bench.step("three")
def three(task: Task) -> None:
    """Do nothing."""
