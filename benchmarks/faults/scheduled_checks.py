"""What the scheduled workflow's part of a fault-injection run must prove, from its records.

The workflow (``chaos-scheduled``, in :mod:`.workflows`): one atomic step, like each of
the three-step workflow's (it logs its start, works, and writes an ``Effect`` row with
its checkpoint). Nobody submits it: its schedules do (:data:`SCHEDULES`: three every
second, one every even second through a cron expression with seconds; all
``catch_up="latest"``), ticked by the run's workers through every fault until the run
pauses them (the admin's switch), before it waits for the last tasks.

The records: each task's schedule, tick (``meta["scheduled_for"]``), idempotency key
and ``created_at`` (the database's clock, as the tick's); the executions, effects,
failed attempts and faults, as for the three-step workflow; and when each worker was
first seen running a step (it was up).

The checks: the three-step workflow's, for the one step (every task completed, its step
ran, its effect committed once by a claim that held the task, each replay explained);
one task per tick, under the tick's key, on its schedule's grid, not submitted before
the tick was due; and from each schedule's first task to its last, a task for every
tick, but those ``catch_up="latest"`` skipped because no worker ticked while they were
the latest due. Each of those needs a cause: a fault then (see :data:`WINDOWS`), or no
worker up; and where another schedule's task shows that a round ticked then (it found
this one due too), only a fault that cut that round will do.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from benchmarks.faults.checks import DATABASE_RESTARTS, Fault, Records, Verdict, check
from benchmarks.servers import percentile

WORKFLOW = "chaos-scheduled"
SCHEDULED_LOG = "CHAOS_SCHEDULED_LOG"
EVEN_SECONDS = "*/2 * * * * *"
#: The schedules, and the seconds between two of their ticks (2: the cron expression).
SCHEDULES: dict[str, float] = {
    "every-second-1": 1.0,
    "every-second-2": 1.0,
    "every-second-3": 1.0,
    "even-seconds": 2.0,
}
#: When a fault of each kind may keep every worker from ticking: from so many seconds
#: before it began to so many after it ended. A PostgreSQL restart leaves each worker's
#: timer thread backing off (up to 5 s after 3.5 s of errors in a row, 10 s after
#: more). A worker paused in a transaction holds what the others' ticks wait for (on
#: PostgreSQL the schedule's row, if it was ticking it; on SQLite the write lock) until
#: it resumes; then every writer it held up races for the lock. A worker killed may
#: have been in a round begun up to a second before (its ticks die with it), and its
#: replacement takes a core for a second or two as it starts.
WINDOWS: dict[str, tuple[float, float]] = {
    "postgres-restart": (0.0, 10.0),
    "mariadb-restart": (0.0, 10.0),
    "stop": (0.0, 2.0),
    "kill": (1.0, 2.0),
}
CAUSES = {
    **DATABASE_RESTARTS,
    "stop": "a worker stopped",
    "kill": "a worker killed",
}
NO_WORKER = "no worker up (killed, paused or starting)"
#: SQLite: the workers' writes waited seconds for its write lock (heartbeats logged late).
STALLED = "SQLite's write lock contended (late heartbeats logged)"


@dataclass(frozen=True)
class Tick:
    """A task of the scheduled workflow."""

    task: str
    schedule: str  # its meta["schedule"]
    due: float  # its meta["scheduled_for"] (epoch seconds)
    key: str | None  # its idempotency key
    created: float  # its created_at: the database's clock when its tick committed


@dataclass
class ScheduledRecords:
    """Everything the scheduled workflow's checks read."""

    ticks: list[Tick]
    executions: Records  # as the three-step workflow's, with ``steps`` 1
    ready: dict[int, float] = field(default_factory=dict)  # pid -> its first step seen
    periods: dict[str, float] = field(default_factory=lambda: dict(SCHEDULES))


@dataclass
class ScheduledVerdict(Verdict):
    expected: int = 0  # ticks due from each schedule's first task to its last
    missed: Counter[str] = field(default_factory=Counter)  # cause -> ticks without a task
    gaps: int = 0  # runs of consecutive missed ticks


def key_of(schedule: str, due: float) -> str:
    """The idempotency key of the tick of ``schedule`` due at ``due`` (epoch seconds)."""
    moment = datetime.fromtimestamp(due, UTC).isoformat().replace("+00:00", "Z")
    return f"schedule:{schedule}:{moment}"


def check_scheduled(records: ScheduledRecords) -> ScheduledVerdict:
    verdict = ScheduledVerdict()
    steps = check(records.executions)  # completed, run, one effect, replays explained
    verdict.problems += steps.problems
    verdict.duplicates, verdict.after_lease_loss = steps.duplicates, steps.after_lease_loss
    check_ticks(records, verdict)
    check_gaps(records, verdict)
    return verdict


def check_ticks(records: ScheduledRecords, verdict: Verdict) -> None:
    """One task per tick, under the tick's key, on its schedule's grid, never early."""
    per_tick = Counter((t.schedule, t.due) for t in records.ticks)
    twice = [f"{key_of(s, due)}: {n} tasks" for (s, due), n in per_tick.items() if n > 1]
    if twice:
        verdict.problem(f"{len(twice)} tick(s) with more than one task", twice)
    strangers = [f"{t.task}: {t.schedule!r}" for t in records.ticks
                 if t.schedule not in records.periods]  # fmt: skip
    if strangers:
        verdict.problem(f"{len(strangers)} task(s) of no schedule of the run", strangers)
    keys = [f"{t.task}: {t.key!r}" for t in records.ticks if t.key != key_of(t.schedule, t.due)]
    if keys:
        verdict.problem(f"{len(keys)} task(s) not under their tick's key", keys)
    off = [
        f"{t.task}: {key_of(t.schedule, t.due)}"
        for t in records.ticks
        if t.schedule in records.periods and t.due % records.periods[t.schedule]
    ]
    if off:
        verdict.problem(f"{len(off)} tick(s) off their schedule's grid", off)
    early = [f"{t.task}: created {t.due - t.created:.3f}s before its tick"
             for t in records.ticks if t.created < t.due]  # fmt: skip
    if early:
        verdict.problem(f"{len(early)} task(s) submitted before their tick was due", early)


def check_gaps(records: ScheduledRecords, verdict: ScheduledVerdict) -> None:
    """From each schedule's first task to its last, every tick has a task, but for ticks
    that ``catch_up="latest"`` skipped because no worker ticked while they were the latest
    due: each missed tick needs a cause (a fault, or no worker up) from its due time to
    the schedule's next tick."""
    unexplained = []
    dues: dict[str, set[float]] = defaultdict(set)
    for tick in records.ticks:
        dues[tick.schedule].add(tick.due)
    for schedule, period in records.periods.items():
        found = sorted(dues.get(schedule, ()))
        if not found:
            verdict.problem(f"schedule {schedule!r} submitted no task")
            continue
        verdict.expected += round((found[-1] - found[0]) / period) + 1
        for before, after in pairwise(found):
            missed = [before + n * period for n in range(1, round((after - before) / period))]
            verdict.gaps += bool(missed)
            for due in missed:
                cause = why_missed(records, schedule, due, period)
                verdict.missed[cause or "unexplained"] += 1
                if cause is None:
                    unexplained.append(
                        f"{key_of(schedule, due)}: no task (the tasks around it: "
                        f"{key_of(schedule, before)}, {key_of(schedule, after)})"
                        + _round_seen(records, schedule, due, period)
                    )
    if unexplained:
        verdict.problem(f"{len(unexplained)} tick(s) missed, unexplained", unexplained)


def round_then(records: ScheduledRecords, schedule: str, due: float, period: float) -> Tick | None:
    """A task of another schedule that a round ticked while ``due`` was the latest tick
    of ``schedule`` (so that round found it due, too), if any.

    A round ticks each due schedule's latest tick as of its clock: a tick ``t`` of a
    schedule of period ``p`` was ticked with the clock in [t, t + p), within
    [due, due + period) when t >= due and t + p <= due + period.
    """
    for tick in records.ticks:
        other = records.periods.get(tick.schedule)
        if (
            tick.schedule != schedule
            and other is not None
            and (due <= tick.due and tick.due + other <= due + period)
        ):
            return tick
    return None


def _round_seen(records: ScheduledRecords, schedule: str, due: float, period: float) -> str:
    seen = round_then(records, schedule, due, period)
    return "" if seen is None else f"; a round ticked {key_of(seen.schedule, seen.due)}"


def why_missed(records: ScheduledRecords, schedule: str, due: float, period: float) -> str | None:
    """What kept the workers from ticking ``due`` while it was ``schedule``'s latest tick,
    if known: a fault then, or (unless a round ticked other schedules then) SQLite's
    write lock held for seconds without a fault (a worker logged a late heartbeat), or
    no worker up."""
    until = due + period
    for fault in sorted(records.executions.faults, key=lambda f: f.start):
        window = WINDOWS.get(fault.kind)
        if window is not None and fault.start - window[0] < until and due <= fault.end + window[1]:
            return CAUSES[fault.kind]
    if round_then(records, schedule, due, period) is not None:
        return None
    executions = records.executions
    if executions.stop_stalls_all and any(
        s.start < until and due <= s.end for s in executions.stalls
    ):
        return STALLED
    up = first_worker_up(records.ready, records.executions.faults, due)
    if up >= until:
        return NO_WORKER
    return None


def first_worker_up(ready: dict[int, float], faults: list[Fault], since: float) -> float:
    """The first moment from ``since`` on when a worker was up: it had started a step,
    was not killed yet and was not paused (infinity if none was again)."""
    moments = []
    for pid, first in ready.items():
        own = [f for f in faults if f.pid == pid]
        killed = min((f.start for f in own if f.kind == "kill"), default=math.inf)
        moment = max(first, since)
        for stop in sorted((f for f in own if f.kind == "stop"), key=lambda f: f.start):
            if stop.start <= moment < stop.end:
                moment = stop.end
        if moment < killed:
            moments.append(moment)
    return min(moments, default=math.inf)


def lateness(records: ScheduledRecords) -> dict[str, dict[str, float]]:
    """Seconds from each tick's due time to its task's submission (the database's clock)
    and to its step's first start (the step's clock; the same machine's): p50/p99/max."""
    first: dict[str, float] = {}
    for e in records.executions.executions:
        first[e.task] = min(first.get(e.task, e.t), e.t)
    submitted = [t.created - t.due for t in records.ticks]
    started = [first[t.task] - t.due for t in records.ticks if t.task in first]
    return {"submitted": spread(submitted), "started": spread(started)}


def spread(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"n": 0}
    return {
        "n": len(seconds),
        "p50": round(percentile(seconds, 50), 3),
        "p99": round(percentile(seconds, 99), 3),
        "max": round(max(seconds), 3),
    }
