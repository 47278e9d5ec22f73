"""The traced workflow's records and the workers table, read at the end of a run, for
``benchmarks.faults.traced_checks``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.faults.checks import Fault
from benchmarks.faults.injection import Fleet
from benchmarks.faults.traced_checks import (
    WORKFLOW,
    Span,
    Traced,
    TracedRecords,
    WorkerRow,
)
from benchmarks.faults.traced_load import TracedLoad


def _hex(value: str | None) -> str | None:
    return None if value is None else value.removeprefix("0x")


def span_of(line: dict[str, Any]) -> Span:
    """A span as ``ReadableSpan.to_json()`` wrote it."""
    attributes = line.get("attributes") or {}
    return Span(
        name=line["name"],
        trace=str(_hex(line["context"]["trace_id"])),
        span=str(_hex(line["context"]["span_id"])),
        parent=_hex(line.get("parent_id")),
        task=attributes.get("salvador.task_id"),
        step=attributes.get("salvador.step"),
        outcome=attributes.get("salvador.outcome"),
        worker=attributes.get("salvador.worker"),
    )


def read_spans(directory: Path) -> tuple[list[Span], int]:
    """Every span the run's processes exported, and how many lines were not spans."""
    spans, unreadable = [], 0
    for path in sorted(directory.glob("spans-*.jsonl")):
        for text in path.read_text().splitlines():
            try:
                spans.append(span_of(json.loads(text)))
            except (ValueError, KeyError, TypeError):
                unreadable += 1
    return spans, unreadable


def wait_for_gone(faults: list[Fault], lease_seconds: float) -> None:
    """Wait until a lease and a half has passed since the last kill: each killed worker's
    last beat is then older than a lease (``gone()``)."""
    kills = [fault.start for fault in faults if fault.kind == "kill"]
    if kills:
        time.sleep(max(0.0, max(kills) + 1.5 * lease_seconds - time.time()))


def traced_records(
    load: TracedLoad, spans_dir: Path, faults: list[Fault], fleet: Fleet
) -> TracedRecords:
    """The records, once every task has finished and every worker has stopped."""
    from salvador_django.models import StepRun, Task, WorkerProcess

    ids = {task_id: number for number, task_id in load.submitted.items()}
    rows = Task.objects.filter(workflow=WORKFLOW).values_list("id", "status", "trace_context")
    completed: dict[str, dict[str, tuple[str, float]]] = {}
    for task_id, name, worker, started in StepRun.objects.filter(
        task__workflow=WORKFLOW, status="completed"
    ).values_list("task_id", "name", "worker", "started_at"):
        completed.setdefault(str(task_id), {})[name] = (worker, started.timestamp())
    tasks = []
    for task_id, status, context in rows:
        key = str(task_id)
        root = load.roots.get(ids[key], ("?", "?")) if key in ids else ("?", "?")
        parent = (context or {}).get("traceparent")
        tasks.append(Traced(key, status, root[0], root[1], parent, completed.get(key, {})))
    spans, unreadable = read_spans(spans_dir)
    alive = set(WorkerProcess.objects.alive().values_list("pk", flat=True))
    gone = set(WorkerProcess.objects.gone().values_list("pk", flat=True))
    workers = [
        WorkerRow(pid, pk in alive, pk in gone)
        for pk, pid in WorkerProcess.objects.values_list("pk", "pid")
    ]
    cleanly = {p.pid for p in fleet.slots if p.returncode == 0}
    return TracedRecords(tasks, spans, faults, workers, set(fleet.killed), cleanly, unreadable)
