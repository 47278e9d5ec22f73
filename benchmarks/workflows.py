"""The benchmark's workflows.

``bench``: three no-op steps; the first records when it started. ``bench-signal`` and
``bench-sleep`` (the waits section): one step that waits for the signal ``go``, or
sleeps ``body["sleep"]`` seconds, and records when the run that got past the wait
began: the moment the woken step was running again.
"""

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


bench_signal = Workflow("bench-signal")


@bench_signal.step("wait")
def wait_for_go(task: Task) -> None:
    """Wait for ``go``; the run that returns from the wait records when it began."""
    began = time.time()
    task.wait_for("go")
    task.state["resumed_at"] = began


bench_sleep = Workflow("bench-sleep")


@bench_sleep.step("nap")
def nap(task: Task) -> None:
    """Sleep ``body["sleep"]`` seconds; the run that wakes records when it began."""
    began = time.time()
    task.sleep(task.body["sleep"])
    task.state["resumed_at"] = began
