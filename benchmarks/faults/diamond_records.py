"""The diamond workflow's load, its aimed faults and its records, for
``benchmarks.faults.diamond_checks``.

``DiamondLoad`` submits the tasks at a steady pace, retrying through outages with the
same idempotency key. ``Striker`` aims faults at parallel branches: every few seconds
it waits for a worker that the diamond's log shows running two branches or more of
one task, then SIGKILLs it (and starts another) or pauses it past its lease, in turn.
``diamond_records`` reads the rest once every task has finished.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from benchmarks.faults.checks import Execution, Fault, Records
from benchmarks.faults.diamond_checks import (
    BRANCHES,
    STEPS,
    WORKFLOW,
    Diamond,
    DiamondRecords,
    Done,
    Run,
    diamond_body,
)
from benchmarks.faults.injection import Fleet, Injector
from benchmarks.faults.paced_load import PacedLoad
from benchmarks.faults.rows import effects_of, failed_attempts

logger = logging.getLogger("chaos")

#: How long a branch of each kind works (seconds): the atomic ones as the three-step
#: workflow's steps (on SQLite they hold its write lock), the others longer.
BRANCH_SECONDS = (0.05, 0.2)
STRIKE_EVERY, STRIKE_PATIENCE = 4.0, 2.0


class DiamondLoad(PacedLoad):
    """Submits ``count`` diamonds over ``duration`` seconds."""

    workflow, key, label, offset = WORKFLOW, "chaos-diamond", "diamond", 0.25

    def work_of(self) -> dict[str, float]:
        return {
            name: round(self.rng.uniform(*(self.work if name in ("start", "b1", "b2", "join")
                                           else BRANCH_SECONDS)), 4)
            for name in STEPS
        }  # fmt: skip

    def body(self, number: int) -> Any:
        return diamond_body(number, self.work_of())


def branches_running(log: Path, now: float, window: float = 1.0) -> dict[int, int]:
    """For each worker process: the most branches of one task it runs now, by the tail of
    the diamond's log (started in the last ``window`` seconds, not ended)."""
    with log.open("rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - 65536))
        lines = file.read().splitlines()[1:]
    started: dict[tuple[str, int, int, str], int] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        key = (entry["task"], entry["step"], entry["attempt"], entry["token"])
        if entry.get("event") == "done":
            started.pop(key, None)
        elif STEPS[entry["step"]] in BRANCHES and entry["t"] > now - window:
            started[key] = entry["pid"]
    per_task: dict[tuple[int, str], int] = {}
    for (task, *_), pid in started.items():
        per_task[pid, task] = per_task.get((pid, task), 0) + 1
    most: dict[int, int] = {}
    for (pid, _), count in per_task.items():
        most[pid] = max(most.get(pid, 0), count)
    return most


class Striker(threading.Thread):
    """Kills, then pauses, then kills... a worker running parallel branches, every
    ``STRIKE_EVERY`` seconds until ``duration`` has passed; records each as a fault of
    the run (``kill`` or ``stop``) and in ``strikes``."""

    def __init__(
        self,
        fleet: Fleet,
        injector: Injector,
        log: Path,
        duration: float,
        pause_seconds: float,
        rng: random.Random,
    ) -> None:
        super().__init__(name="chaos-striker", daemon=True)
        self.fleet, self.injector, self.log = fleet, injector, log
        self.duration, self.pause_seconds, self.rng = duration, pause_seconds, rng
        self.strikes: list[Fault] = []
        self.missed = 0  # moments when no worker ran two branches of one task
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            self._strike()
        except Exception as exc:  # recorded: the run fails
            logger.exception("chaos: the striker failed")
            self.errors.append(repr(exc))

    def _strike(self) -> None:
        began = time.monotonic()
        number = 0
        while time.monotonic() - began + STRIKE_EVERY < self.duration:
            time.sleep(STRIKE_EVERY * self.rng.uniform(0.75, 1.25))
            pid = self._victim()
            if pid is None:
                self.missed += 1
                continue
            kind = "kill" if number % 2 == 0 else "stop"
            number += 1
            start = time.time()
            if kind == "kill":
                if not self.fleet.kill_pid(pid):
                    continue
                fault = Fault("kill", start, time.time(), pid)
            else:
                if self.fleet.pause(self.rng, prefer=pid, only=True) is None:
                    continue
                time.sleep(self.pause_seconds)
                self.fleet.resume(pid)
                fault = Fault("stop", start, time.time(), pid)
            self.strikes.append(fault)
            self.injector.record(fault)

    def _victim(self) -> int | None:
        deadline = time.monotonic() + STRIKE_PATIENCE
        while time.monotonic() < deadline:
            running = branches_running(self.log, time.time())
            busy = [pid for pid, count in running.items() if count >= 2]
            if busy and set(busy) & set(self.fleet.pids()):
                return self.rng.choice(sorted(set(busy) & set(self.fleet.pids())))
            time.sleep(0.02)
        return None


def read_log(log: Path) -> tuple[list[Execution], list[Done]]:
    """The diamond's log: its steps' starts, and their ends."""
    executions, done = [], []
    for line in log.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            if entry.pop("event", None) == "done":
                done.append(Done(**{f.name: entry[f.name] for f in fields(Done)}))
            else:
                executions.append(Execution(**entry))
    return executions, done


def diamond_records(
    load: DiamondLoad, striker: Striker | None, log: Path, faults: list[Fault]
) -> DiamondRecords:
    """The records of the diamond workflow, read once every task has finished."""
    from salvador_django.models import StepRun, Task

    executions, done = read_log(log)
    diamonds, statuses, errors, events = [], {}, {}, {}
    rows = Task.objects.filter(workflow=WORKFLOW).values_list(
        "id", "body", "status", "return_value", "error", "created_at", "finished_at"
    )
    for task_id, body, status, result, error, created, finished in rows:
        key = str(task_id)
        diamonds.append(Diamond(key, (body or {})["number"], status, result, error))
        statuses[key] = status
        if status != "completed":
            errors[key] = error
        events[key] = [created.timestamp()]
        if finished is not None:
            events[key].append(finished.timestamp())
    runs = [
        Run(str(task), name, started.timestamp(), finished.timestamp())
        for task, name, started, finished in StepRun.objects.filter(
            task__workflow=WORKFLOW, status="completed"
        ).values_list("task_id", "name", "started_at", "finished_at")
    ]
    effects = effects_of(statuses)
    failed = failed_attempts(WORKFLOW)
    records = Records(
        statuses, errors, events, executions, effects, failed, faults, steps=len(STEPS)
    )
    strikes = list(striker.strikes) if striker is not None else []
    return DiamondRecords(dict(load.submitted), diamonds, runs, records, done, strikes)
