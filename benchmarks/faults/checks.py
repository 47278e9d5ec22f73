"""What a fault-injection run must prove, checked from its records after the run.

The records: the execution log (every time a step started, by which claim and
process), the committed effects (one row per step, written in the step's
transaction), the task table, the failed step attempts and the faults injected.

A claim is identified by its token; the claims of one task are ordered by the time
each was taken (the row's ``updated_at`` that the claim wrote). A claim has lost
its lease, at the latest, when the next claim of the same task is taken.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

NUMBER_OF_STEPS = 3


@dataclass(frozen=True)
class Execution:
    """One line of the execution log: a step started."""

    t: float
    task: str
    step: int
    attempt: int
    pid: int
    token: str
    claimed: float
    due: float = 0.0  # the task's run_after, as the claim found it


@dataclass(frozen=True)
class Effect:
    """A committed effect row."""

    task: str
    step: int
    token: str
    pid: int
    at: float


#: The faults that restart the run's database server, and how a verdict names each.
DATABASE_RESTARTS = {
    "postgres-restart": "PostgreSQL restarted",
    "mariadb-restart": "MariaDB restarted",
}


@dataclass(frozen=True)
class Fault:
    """A fault injected: ``kind`` from ``start`` to ``end`` (equal for an instant one)."""

    kind: str
    start: float
    end: float
    pid: int | None = None


@dataclass
class Records:
    """Everything the checks read."""

    statuses: dict[str, str]  # task id -> status
    errors: dict[str, str]  # task id -> error, for tasks not completed
    events: dict[str, list[float]]  # task id -> submit and finish times
    executions: list[Execution]
    effects: list[Effect]
    failed_attempts: set[tuple[str, int, int]]  # (task, step index, attempt) that raised
    faults: list[Fault]
    dead_workers: list[str] = field(default_factory=list)  # workers that died on their own
    dead_threads: list[str] = field(default_factory=list)  # threads an exception ended
    steps: int = NUMBER_OF_STEPS  # of each task's workflow
    #: SQLite: a worker paused in a transaction holds the write lock, and every other
    #: worker's heartbeats wait for it past their lease; its resume lets a sweep reap them.
    stop_stalls_all: bool = False
    #: Heartbeats a worker logged as late (``stall`` faults of its pid): its leases may
    #: have expired with no fault injected (SQLite's write lock contended, a starved CPU).
    stalls: list[Fault] = field(default_factory=list)


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    duplicates: Counter[str] = field(default_factory=Counter)  # cause -> executions
    after_lease_loss: Counter[str] = field(default_factory=Counter)  # cause -> executions
    recoveries: list[tuple[Fault, float]] = field(default_factory=list)  # seconds per fault

    @property
    def recovery(self) -> dict[str, float]:
        """For each kind of fault, the longest recovery of one fault of that kind."""
        longest: dict[str, float] = {}
        for fault, seconds in self.recoveries:
            longest[fault.kind] = max(longest.get(fault.kind, 0.0), seconds)
        return longest

    @property
    def passed(self) -> bool:
        return not self.problems

    def problem(self, text: str, examples: Iterable[str] = ()) -> None:
        shown = list(examples)[:5]
        self.problems.append(text + "".join(f"\n    {example}" for example in shown))


def check(records: Records) -> Verdict:
    verdict = Verdict()
    _check_outcomes(records, verdict)
    by_task = executions_by_task(records.executions)
    _check_observed(records, by_task, verdict)
    _check_ordering(by_task, verdict)
    _check_effects(records, by_task, verdict)
    _explain_duplicates(records, by_task, verdict)
    _explain_executions_after_lease_loss(records, by_task, verdict)
    verdict.recoveries = recovery_per_fault(records)
    if records.dead_workers:
        verdict.problem(
            f"{len(records.dead_workers)} worker(s) died without being killed",
            records.dead_workers,
        )
    if records.dead_threads:
        verdict.problem(
            f"{len(records.dead_threads)} worker thread(s) ended by an uncaught exception",
            records.dead_threads,
        )
    return verdict


def _check_outcomes(records: Records, verdict: Verdict) -> None:
    not_completed = {t: s for t, s in records.statuses.items() if s != "completed"}
    if not_completed:
        counts = Counter(not_completed.values())
        verdict.problem(
            f"{len(not_completed)} task(s) not completed: {dict(counts)}",
            (f"{t} {s}: {records.errors.get(t, '')}" for t, s in not_completed.items()),
        )


def _check_observed(
    records: Records, by_task: dict[str, list[Execution]], verdict: Verdict
) -> None:
    missing = [
        f"{task}: steps seen {sorted({e.step for e in by_task.get(task, [])})}"
        for task in records.statuses
        if {e.step for e in by_task.get(task, [])} != set(range(records.steps))
    ]
    if missing:
        verdict.problem(f"{len(missing)} task(s) without every step observed", missing)


def claim_times(executions: list[Execution]) -> dict[str, float]:
    """When each claim (token) of one task was taken, in the order they were taken."""
    first: dict[str, float] = {}
    for execution in executions:
        first.setdefault(execution.token, execution.claimed)
    return dict(sorted(first.items(), key=lambda item: item[1]))


def lost_at(executions: list[Execution]) -> dict[str, float]:
    """For each claim of one task that a later claim replaced: when that one was taken."""
    claims = claim_times(executions)
    return {token: claims[after] for token, after in pairwise(claims)}


def executions_by_task(executions: Iterable[Execution]) -> dict[str, list[Execution]]:
    """Each task's executions, in the order they started."""
    by_task: dict[str, list[Execution]] = defaultdict(list)
    for execution in sorted(executions, key=lambda e: e.t):
        by_task[execution.task].append(execution)
    return by_task


def _check_ordering(by_task: dict[str, list[Execution]], verdict: Verdict) -> None:
    """No claim runs a step below one an earlier claim reached; each runs its steps in order.

    A claim starts where the last checkpoint left the task. An earlier claim that
    started step s had checkpointed every step below s, so a later claim starting
    below s means a completed step ran again, or steps ran out of order.
    """
    broken = []
    for task, executions in by_task.items():
        reached = -1
        for token in claim_times(executions):
            steps = [e.step for e in executions if e.token == token]
            if steps != sorted(steps) or steps[0] < reached:
                broken.append(f"{task}: claim {token} ran steps {steps} after step {reached}")
            reached = max(reached, steps[-1])
    if broken:
        verdict.problem(f"{len(broken)} claim(s) ran steps out of order", broken)


def _check_effects(records: Records, by_task: dict[str, list[Execution]], verdict: Verdict) -> None:
    """Exactly one effect per step, written by a claim that still held the task.

    An effect of step s by claim i is a write after lease loss when a later claim ran
    step s or one below it: that claim was taken before step s was checkpointed, so
    claim i's commit came after it had lost the task.
    """
    counts = Counter((e.task, e.step) for e in records.effects)
    wrong = [
        f"{task} step {step}: {counts.get((task, step), 0)} effect(s)"
        for task, status in records.statuses.items()
        if status == "completed"
        for step in range(records.steps)
        if counts.get((task, step), 0) != 1
    ]
    if wrong:
        verdict.problem(f"{len(wrong)} step(s) without exactly one committed effect", wrong)
    late = []
    for effect in records.effects:
        executions = by_task.get(effect.task, [])
        order = list(claim_times(executions))
        if effect.token not in order:
            late.append(f"{effect.task} step {effect.step}: effect by an unlogged claim")
            continue
        later = set(order[order.index(effect.token) + 1 :])
        if any(e.token in later and e.step <= effect.step for e in executions):
            late.append(f"{effect.task} step {effect.step}: written by {effect.token} too late")
    if late:
        verdict.problem(f"{len(late)} effect(s) written after their lease was lost", late)


def _cause(
    records: Records,
    earlier: Execution,
    since: float,
    until: float,
    again: Execution | None = None,
) -> str | None:
    """What stopped the claim that ran ``earlier`` between ``since`` and ``until``
    (``again``: the execution of the same step after it, if any). A failed attempt
    explains only a later attempt: a second execution of the same attempt is not its
    retry (the first was stopped before its failure was recorded, or not at all)."""
    failed = (earlier.task, earlier.step, earlier.attempt) in records.failed_attempts
    if failed and (again is None or again.attempt > earlier.attempt):
        return "retried after the step failed"
    for fault in records.faults:
        if not (since <= fault.end and fault.start <= until):
            continue
        if fault.kind == "kill" and fault.pid == earlier.pid:
            return "worker killed"
        if fault.kind == "stop" and fault.pid == earlier.pid:
            return "worker stopped past its lease"
        if fault.kind in DATABASE_RESTARTS:
            return DATABASE_RESTARTS[fault.kind]
    if records.stop_stalls_all and any(
        f.kind == "stop" and since <= f.end and f.start <= until for f in records.faults
    ):
        return "another worker stopped (SQLite's write lock held)"
    if any(s.pid == earlier.pid and since <= s.end and s.start <= until for s in records.stalls):
        return "its heartbeat late (logged by the worker)"
    return None


def _explain_duplicates(
    records: Records, by_task: dict[str, list[Execution]], verdict: Verdict
) -> None:
    """Every second execution of a step is explained by what stopped the one before,
    from its claim on (a worker paused past its lease may resume just before a step)."""
    unexplained = []
    for task, executions in by_task.items():
        lost = lost_at(executions)
        for step in range(records.steps):
            runs = [e for e in executions if e.step == step]
            for earlier, later in pairwise(runs):
                cause = (
                    "started after its lease was lost"  # explained (or not) below
                    if later.t > lost.get(later.token, math.inf)
                    else _cause(records, earlier, min(earlier.claimed, earlier.t), later.t, later)
                )
                verdict.duplicates[cause or "unexplained"] += 1
                if cause is None:
                    unexplained.append(
                        f"{task} step {step}: pid {earlier.pid} at {earlier.t:.3f}, "
                        f"again by pid {later.pid} at {later.t:.3f}"
                    )
    if unexplained:
        verdict.problem(f"{len(unexplained)} duplicate execution(s) unexplained", unexplained)


def _explain_executions_after_lease_loss(
    records: Records, by_task: dict[str, list[Execution]], verdict: Verdict
) -> None:
    """A step started by a claim after the next claim of its task was taken.

    The worker re-confirms a late lease before a step, so this happens only when a
    process is paused between that check and the step's first line. Its effect must
    not have committed (checked above); its cause must be a pause or an outage.
    """
    unexplained = []
    for task, executions in by_task.items():
        lost = lost_at(executions)
        for execution in executions:
            if execution.t > lost.get(execution.token, math.inf):
                cause = _cause(records, execution, execution.claimed, execution.t)
                verdict.after_lease_loss[cause or "unexplained"] += 1
                if cause is None:
                    unexplained.append(f"{task} step {execution.step} by {execution.token}")
    if unexplained:
        verdict.problem(
            f"{len(unexplained)} step(s) started after their lease was lost, unexplained",
            unexplained,
        )


def recovery_per_fault(records: Records) -> list[tuple[Fault, float]]:
    """Each fault, with the longest time from it until every task moved again.

    A task "moves" when it is submitted, starts a step or finishes. For a fault at
    time f, every task with an event before f and its next event after f waited
    across it; the fault's recovery time is the longest such wait past f.
    """
    moments: dict[str, list[float]] = defaultdict(list)
    for task, times in records.events.items():
        moments[task].extend(times)
    for execution in records.executions:
        moments[execution.task].append(execution.t)
    series = [sorted(times) for times in moments.values()]
    recoveries = []
    for fault in sorted(records.faults, key=lambda f: f.start):
        waits = [0.0]
        for times in series:
            after = bisect_right(times, fault.start)
            if 0 < after < len(times):
                waits.append(times[after] - fault.start)
        recoveries.append((fault, max(waits)))
    return recoveries
