"""The waiting workflow's records, read for ``benchmarks.faults.waiting_checks``.

``StuckWatch`` samples, every half second while the run goes on, the tasks that
wait for a signal while a signal of that name is there, undelivered (which must
never be seen). ``wait_records`` reads the rest once every task has finished: the
tables, the waits log the steps wrote, and what the load sent and paused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from benchmarks.faults.checks import Fault
from benchmarks.faults.waiting_checks import (
    WORKFLOW,
    Failure,
    Received,
    SignalRow,
    StepStart,
    Stuck,
    WaitRecords,
    WaitRow,
    Woke,
    first_claims,
)

if TYPE_CHECKING:
    from benchmarks.faults.waiting_load import WaitingLoad

T = TypeVar("T")


def canonical(payload: Any) -> str:
    """A JSON payload as the checks compare it."""
    return json.dumps(payload, sort_keys=True)


class StuckWatch(threading.Thread, Generic[T]):
    """Samples what must never be seen, until stopped: by default, the tasks left
    waiting for a signal that is there (``look``: one look, what it saw)."""

    def __init__(self, every: float = 0.5, look: Callable[[], list[T]] | None = None) -> None:
        super().__init__(name="chaos-stuck-watch", daemon=True)
        self.every = every
        self.look: Callable[[], list[Any]] = look or stuck_now
        self.seen: list[T] = []
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        from django.db import DatabaseError, connection

        while not self._done.wait(self.every):
            try:
                self.seen += self.look()
                self.samples += 1
            except DatabaseError:
                connection.close()
        connection.close()

    def stop(self) -> None:
        self._done.set()
        self.join()


def stuck_now() -> list[Stuck]:
    """Tasks waiting for a signal name with an undelivered signal of it (one statement)."""
    from django.db.models import F

    from salvador_django.models import Signal

    at = time.time()
    rows = Signal.objects.filter(
        consumed_at__isnull=True,
        task__workflow=WORKFLOW,
        task__status="waiting",
        task__waiting_for=F("name"),
    ).values_list("task_id", "name", "id")
    return [Stuck(at, str(task), name, signal) for task, name, signal in rows]


def wait_records(
    load: WaitingLoad,
    watch: StuckWatch[Stuck],
    log: Path,
    faults: list[Fault],
    queue: list[tuple[float, float]],
    ready: dict[int, float],
    *,
    late_limit: float,
    stop_stalls_all: bool,
) -> WaitRecords:
    """The records of the waiting workflow, read once every task has finished."""
    from salvador_django.models import Task

    statuses, waiting_for = {}, {}
    rows = Task.objects.filter(workflow=WORKFLOW).values_list("id", "status", "waiting_for")
    for task_id, status, name in rows:
        statuses[str(task_id)], waiting_for[str(task_id)] = status, name
    woke, starts = read_log(log)
    queue = queue + first_claims((s.task, s.due, s.claimed) for s in starts)
    ready = dict(ready)
    for start in starts:  # a worker may have run steps of this workflow first
        ready[start.pid] = min(ready.get(start.pid, start.t), start.t)
    return WaitRecords(
        statuses,
        waiting_for,
        load.sent,
        _signals(),
        _received(),
        _waits(),
        woke,
        starts,
        load.pauses,
        watch.seen + stuck_now(),
        faults,
        queue,
        _failures(),
        ready,
        late_limit=late_limit,
        stop_stalls_all=stop_stalls_all,
    )


def _signals() -> list[SignalRow]:
    from salvador_django.models import Signal

    fields = ("id", "task_id", "name", "idempotency_key", "payload", "sent_at", "consumed_at")
    rows = Signal.objects.filter(task__workflow=WORKFLOW).values_list(*fields, "consumed_by")
    return [
        SignalRow(
            row_id,
            str(task),
            name,
            key,
            canonical(payload),
            sent.timestamp(),
            consumed.timestamp() if consumed else None,
            by,
        )
        for row_id, task, name, key, payload, sent, consumed, by in rows
    ]


def _waits() -> list[WaitRow]:
    from salvador_django.models import Wait

    fields = ("task_id", "step_name", "position", "kind", "name", "until", "started_at")
    rows = Wait.objects.filter(task__workflow=WORKFLOW).values_list(*fields, "outcome", "signal")
    return [
        WaitRow(
            str(task),
            step,
            position,
            kind,
            name,
            until.timestamp() if until else None,
            started.timestamp(),
            outcome,
            signal,
        )
        for task, step, position, kind, name, until, started, outcome, signal in rows
    ]


def _failures() -> list[Failure]:
    from salvador_django.models import StepRun

    rows = StepRun.objects.filter(task__workflow=WORKFLOW, status="failed").values_list(
        "task_id", "name", "finished_at", "error"
    )
    return [
        Failure(str(task), step, finished.timestamp(), (error.splitlines() or [""])[0][:200])
        for task, step, finished, error in rows
    ]


def _received() -> list[Received]:
    from benchmarks.faults.models import Received as ReceivedRow

    rows = ReceivedRow._default_manager.values_list(
        "task_id", "step", "position", "name", "payload"
    )
    return [
        Received(str(task), step, position, name, canonical(payload))
        for task, step, position, name, payload in rows
    ]


def first_steps(runs: Iterable[Any]) -> dict[int, float]:
    """When each worker (``pid``) started its first of ``runs`` (each with ``pid``, ``t``)."""
    first: dict[int, float] = {}
    for run in runs:
        first[run.pid] = min(first.get(run.pid, run.t), run.t)
    return first


def read_log(log: Path) -> tuple[list[Woke], list[StepStart]]:
    """The waits log: the timers the steps saw end, and the starts of step runs."""
    woke, starts = [], []
    for line in log.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            if entry["event"] == "start":
                starts.append(_read(StepStart, entry))
            else:
                woke.append(_read(Woke, entry))
    return woke, starts


def _read(kind: type[T], entry: dict[str, Any]) -> T:
    return kind(**{f.name: entry[f.name] for f in fields(kind)})  # type: ignore[arg-type]
