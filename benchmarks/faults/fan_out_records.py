"""The fan-out workflow's load and records, for ``benchmarks.faults.fan_out_checks``.

``FanOutLoad`` submits the parents at a steady pace (half of them map their
children, half start them one by one), retrying through outages with the same
idempotency key. ``wrong_counts`` is what a ``StuckWatch`` looks at, every half
second: the waiting parents whose count of children left disagrees with their
awaited children. ``fan_out_records`` reads the rest once every task has finished.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from benchmarks.faults.checks import Execution, Fault, Records
from benchmarks.faults.fan_out_checks import (
    CHILD,
    CHILDREN,
    UNFINISHED,
    WORKFLOW,
    Child,
    FanOutRecords,
    Parent,
    ParentStart,
    Seen,
    parent_body,
)
from benchmarks.faults.paced_load import PacedLoad
from benchmarks.faults.rows import effects_of, failed_attempts
from benchmarks.faults.waiting_records import StuckWatch

logger = logging.getLogger("chaos")


class FanOutLoad(PacedLoad):
    """Submits ``count`` parents over ``duration`` seconds; each child sleeps ``work``
    (a range of seconds) in its step."""

    workflow, key, label = WORKFLOW, "chaos-fan-out", "fan-out"

    def body(self, number: int) -> Any:
        work = [round(self.rng.uniform(*self.work), 4) for _ in range(CHILDREN)]
        return parent_body(number, work, use_map=number % 2 == 0)


def wrong_counts() -> list[Seen]:
    """The waiting parents whose ``children_left`` is not the number of their awaited
    children still unfinished, or is 0 (one statement: one snapshot)."""
    from django.db.models import Count, Q

    from salvador_django.models import Task

    at = time.time()
    unfinished = Q(children__awaited=True, children__status__in=UNFINISHED)
    rows = (
        Task.objects.filter(workflow=WORKFLOW, status="waiting")
        .annotate(unfinished=Count("children", filter=unfinished))
        .values_list("id", "children_left", "unfinished")
    )
    seen = [Seen(at, str(task), left, count) for task, left, count in rows]
    return [sample for sample in seen if sample.wrong]


def watch() -> StuckWatch[Seen]:
    return StuckWatch(look=wrong_counts)


def fan_out_records(
    load: FanOutLoad, watch: StuckWatch[Seen], log: Path, faults: list[Fault]
) -> FanOutRecords:
    """The records of the fan-out workflow, read once every task has finished."""
    executions, starts = read_log(log)
    children = _children()
    return FanOutRecords(
        dict(load.submitted),
        _parents(),
        children,
        _execution_records(children, executions, faults),
        starts,
        watch.seen + wrong_counts(),
    )


def _parents() -> list[Parent]:
    from salvador_django.models import Task

    names = ("id", "body", "status", "children_left", "return_value", "error")
    return [
        Parent(str(task), body["number"], body["map"], status, left, result, error)
        for task, body, status, left, result, error in Task.objects.filter(
            workflow=WORKFLOW
        ).values_list(*names)
    ]


def _children() -> list[Child]:
    from salvador_django.models import Task

    names = ("id", "parent_id", "parent_step", "child_key", "status", "body", "finished_at")
    return [
        Child(
            str(task),
            None if parent is None else str(parent),
            step or "",
            key or "",
            status,
            body["parent"],
            body["n"],
            None if finished is None else finished.timestamp(),
        )
        for task, parent, step, key, status, body, finished in Task.objects.filter(
            workflow=CHILD
        ).values_list(*names)
    ]


def _execution_records(
    children: list[Child], executions: list[Execution], faults: list[Fault]
) -> Records:
    """The children's executions, effects and outcomes, as the three-step workflow's."""
    from salvador_django.models import Task

    statuses, errors, events = {}, {}, {}
    rows = Task.objects.filter(workflow=CHILD).values_list(
        "id", "status", "error", "created_at", "finished_at"
    )
    for task_id, status, error, created, finished in rows:
        key = str(task_id)
        statuses[key] = status
        if status != "completed":
            errors[key] = error
        events[key] = [created.timestamp()]
        if finished is not None:
            events[key].append(finished.timestamp())
    ids = {child.id for child in children}
    effects = effects_of(ids)
    failed = failed_attempts(CHILD)
    return Records(statuses, errors, events, executions, effects, failed, faults, steps=1)


def read_log(log: Path) -> tuple[list[Execution], list[ParentStart]]:
    """The children's log: the children's executions, and the starts of parents' steps."""
    executions, starts = [], []
    for line in log.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            if entry.get("event") == "parent":
                starts.append(ParentStart(**{f.name: entry[f.name] for f in fields(ParentStart)}))
            else:
                executions.append(Execution(**entry))
    return executions, starts
