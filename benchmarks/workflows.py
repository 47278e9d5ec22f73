"""The benchmark's workflows.

``bench``: three no-op steps; the first records when it started. ``bench-signal`` and
``bench-sleep`` (the waits section): one step that waits for the signal ``go``, or
sleeps ``body["sleep"]`` seconds, and records when the run that got past the wait
began: the moment the woken step was running again. ``bench-child`` and
``bench-fan-out`` (the fan-out section): a no-op step that returns when it ended, and a
parent that maps N of them and then records when its next step began.
``bench-line``, ``bench-diamond`` and ``bench-wide`` (the graph section): six no-op
steps in a straight line; six no-op steps as a diamond (one, then four at the same
time, then one that joins them); eight independent steps (roots) that sleep
``body["sleep"]`` seconds each. ``bench-tick`` (the schedules section): one step that
records when it started, with the schedules ``SALVADOR_BENCH_SCHEDULES`` declares
(:func:`bench_tick_schedules`; none without it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import timedelta

from benchmarks.schedules import TICK_SCHEDULES, TICK_WORKFLOW
from salvador_django import Schedule, Workflow
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


bench_child = Workflow("bench-child")


@bench_child.step("noop")
def noop(task: Task) -> float:
    """Do nothing; the result is when the step ended (the fan-out section reads it)."""
    return time.time()


bench_fan_out = Workflow("bench-fan-out")


@bench_fan_out.step("fan")
def fan(task: Task) -> None:
    """Start ``body["children"]`` children of ``bench-child`` and wait for them all.

    The run that gets past the wait records when it began and when the last child
    ended (the latest of their results).
    """
    began = time.time()
    ended = task.map(bench_child, [{"i": i} for i in range(task.body["children"])])
    task.state["woken_at"] = began
    task.state["last_child_at"] = max(ended)


@bench_fan_out.step("after")
def after(task: Task) -> None:
    """Record when the step after the wait began: the parent had resumed."""
    task.state["resumed_at"] = time.time()


LINE_STEPS = ("one", "two", "three", "four", "five", "six")
BRANCHES = ("b1", "b2", "b3", "b4")
WIDE_STEPS = 8


def _noop(task: Task) -> None:
    """Do nothing."""


bench_line = Workflow("bench-line")
for _name in LINE_STEPS:
    bench_line.step(_name, _noop)

bench_diamond = Workflow("bench-diamond")
bench_diamond.step("start", _noop, after=[])
for _name in BRANCHES:
    bench_diamond.step(_name, _noop, after="start")
bench_diamond.step("join", _noop, after=list(BRANCHES))


def _nap(task: Task) -> None:
    """Sleep ``body["sleep"]`` seconds: a step that waits on something else (I/O)."""
    time.sleep(task.body["sleep"])


bench_wide = Workflow("bench-wide")
for _number in range(WIDE_STEPS):
    bench_wide.step(f"w{_number + 1}", _nap, after=[])


TICK_ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo")


def bench_tick_schedules(spec: str) -> list[Schedule]:
    """The schedules ``spec`` ("<crons>:<month>:<every>", or "" for none) declares:
    ``crons`` cron expressions that tick only in ``month`` (1-12), at a minute of a
    day of their own, in four time zones; then ``every`` schedules every second."""
    if not spec:
        return []
    crons, month, every = (int(part) for part in spec.split(":"))
    return [
        Schedule(f"{n % 60} {n // 60 % 24} {1 + n // 1440 % 28} {month} *", name=f"bench-tick-{n}",
                 timezone=TICK_ZONES[n % len(TICK_ZONES)])
        for n in range(crons)
    ] + [
        Schedule(every=timedelta(seconds=1), name=f"bench-tick-every-{n}",
                 meta={"schedule": f"bench-tick-every-{n}"})
        for n in range(every)
    ]  # fmt: skip


def _started(task: Task) -> None:
    """Record when the step started (the schedules section's lateness)."""
    task.state["t1"] = time.time()


def define_tick_workflow(schedules: Sequence[Schedule] = ()) -> Workflow:
    """Register ``bench-tick`` with ``schedules``."""
    workflow = Workflow(TICK_WORKFLOW, schedules=schedules)
    workflow.step("start", _started)
    return workflow


define_tick_workflow(bench_tick_schedules(os.environ.get(TICK_SCHEDULES, "")))
