"""What the diamond workflow's part of a fault-injection run must prove, from its records.

The workflow (``chaos-diamond``, :mod:`.diamond`): ``start``, then ``b1`` to ``b4`` at
the same time, then ``join``, which returns the four branches' outputs as it saw them
in ``task.outputs``. ``start``, ``b1``, ``b2`` and ``join`` are atomic: each writes an
``Effect`` row in its checkpoint's transaction. ``b3`` and ``b4`` are not: they work
(sleep) side by side with the others, and what they commit is their checkpoint.

The records: the tasks the run submitted (by their number) and their rows; their
completed step runs; the diamond's execution log (each step's start, and its end
when its function returned); the effects; the failed attempts and the faults.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.faults.checks import (
    Execution,
    Fault,
    Records,
    Verdict,
    _check_observed,
    _check_outcomes,
    _explain_duplicates,
    _explain_executions_after_lease_loss,
    claim_times,
    executions_by_task,
    recovery_per_fault,
)

WORKFLOW = "chaos-diamond"
STEPS = ("start", "b1", "b2", "b3", "b4", "join")
BRANCHES = ("b1", "b2", "b3", "b4")
ATOMIC = ("start", "b1", "b2", "join")
AFTER: dict[str, tuple[str, ...]] = {"start": (), **dict.fromkeys(BRANCHES, ("start",)),
                                     "join": BRANCHES}  # fmt: skip


def index(name: str) -> int:
    return STEPS.index(name)


def ancestors(name: str) -> set[str]:
    """The steps ``name`` waits for, directly or not."""
    found: set[str] = set()
    for before in AFTER[name]:
        found |= {before, *ancestors(before)}
    return found


def diamond_body(number: int, work: dict[str, float]) -> dict[str, Any]:
    """The body of the task submitted ``number``th; ``work``: each step's sleep."""
    return {"number": number, "work": work}


def branch_output(number: int, name: str) -> list[Any]:
    """What branch ``name`` of the task submitted ``number``th returns."""
    return [number, name]


def expected_result(number: int) -> dict[str, list[Any]]:
    """The join's result: every branch's output, as ``task.outputs`` gave it."""
    return {name: branch_output(number, name) for name in BRANCHES}


@dataclass(frozen=True)
class Diamond:
    id: str
    number: int  # from its body
    status: str
    result: Any  # its return value (JSON), None unless completed
    error: str = ""


@dataclass(frozen=True)
class Run:
    """A completed step run (database clock for its times, epoch seconds)."""

    task: str
    name: str
    started: float
    finished: float


@dataclass(frozen=True)
class Done:
    """A step's function returned (the diamond's log, ``event``: ``done``)."""

    t: float
    task: str
    step: int
    attempt: int
    token: str


@dataclass
class DiamondRecords:
    """Everything the diamond checks read."""

    submitted: dict[int, str]  # number -> the id its submission returned
    diamonds: list[Diamond]
    runs: list[Run]
    executions: Records  # as the three-step workflow's, with ``steps`` 6
    done: list[Done] = field(default_factory=list)
    strikes: list[Fault] = field(default_factory=list)  # faults aimed at running branches


@dataclass
class DiamondVerdict(Verdict):
    #: Faults that hit a worker while it ran two branches or more of one task, by kind.
    during_branches: Counter[str] = field(default_factory=Counter)
    #: Executions of a branch that overlapped another branch of the same claim.
    overlapping: int = 0


def check_diamonds(records: DiamondRecords) -> DiamondVerdict:
    verdict = DiamondVerdict()
    runs = records.executions
    _check_outcomes(runs, verdict)
    by_task = executions_by_task(runs.executions)
    _check_observed(runs, by_task, verdict)
    check_submitted(records, verdict)
    check_step_runs(records, verdict)
    check_order(records, by_task, verdict)
    check_effects(records, by_task, verdict)
    check_join(records, verdict)
    _explain_duplicates(runs, by_task, verdict)
    _explain_executions_after_lease_loss(runs, by_task, verdict)
    verdict.recoveries = recovery_per_fault(runs)
    verdict.during_branches, verdict.overlapping = parallel_figures(records)
    return verdict


def check_submitted(records: DiamondRecords, verdict: Verdict) -> None:
    """Each task submitted has a row, and every row is one the run submitted."""
    ids = {d.id for d in records.diamonds}
    lost = [f"#{n}: {task}" for n, task in sorted(records.submitted.items()) if task not in ids]
    if lost:
        verdict.problem(f"{len(lost)} diamond(s) submitted without a row", lost)
    strangers = [d.id for d in records.diamonds if d.id not in set(records.submitted.values())]
    if strangers:
        verdict.problem(f"{len(strangers)} diamond(s) the run did not submit", strangers)


def _completed_runs(records: DiamondRecords) -> dict[tuple[str, str], list[Run]]:
    found: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in records.runs:
        found[run.task, run.name].append(run)
    return found


def check_step_runs(records: DiamondRecords, verdict: Verdict) -> None:
    """Every step of every completed task has exactly one completed step run: it ran,
    and its checkpoint was written once."""
    runs = _completed_runs(records)
    wrong = [
        f"{d.id} step {name!r}: {len(runs.get((d.id, name), []))} completed run(s)"
        for d in records.diamonds
        if d.status == "completed"
        for name in STEPS
        if len(runs.get((d.id, name), [])) != 1
    ]
    if wrong:
        verdict.problem(f"{len(wrong)} step(s) without exactly one completed run", wrong)


def check_order(
    records: DiamondRecords, by_task: dict[str, list[Execution]], verdict: Verdict
) -> None:
    """No step started before each step it waits for had checkpointed, and no claim ran a
    step whose completed run had been checkpointed before the claim was taken."""
    runs = _completed_runs(records)
    early, again = [], []
    for task, executions in by_task.items():
        claims = claim_times(executions)
        for e in executions:
            name = STEPS[e.step]
            for before in AFTER[name]:
                ended = min((r.finished for r in runs.get((task, before), [])), default=math.inf)
                if e.t <= ended:
                    how = "never completed" if ended == math.inf else f"ended {ended:.3f}"
                    early.append(f"{task} {name!r} started at {e.t:.3f}, {before!r} {how}")
            done = min((r.finished for r in runs.get((task, name), [])), default=math.inf)
            if claims[e.token] > done:
                again.append(f"{task} {name!r} ran again by claim {e.token} after it completed")
    if early:
        verdict.problem(f"{len(early)} step(s) started before a step they wait for ended", early)
    if again:
        verdict.problem(f"{len(again)} completed step(s) ran again", again)


def check_effects(
    records: DiamondRecords, by_task: dict[str, list[Execution]], verdict: Verdict
) -> None:
    """Exactly one effect per atomic step of each completed task, written by a claim that
    still held the task: no later claim ran that step or a step it waits for (that
    claim was taken before the step was checkpointed, so this one had lost the task)."""
    effects = records.executions.effects
    counts = Counter((e.task, e.step) for e in effects)
    wrong = [
        f"{d.id} step {name!r}: {counts.get((d.id, index(name)), 0)} effect(s)"
        for d in records.diamonds
        if d.status == "completed"
        for name in ATOMIC
        if counts.get((d.id, index(name)), 0) != 1
    ]
    stray = [f"{e.task} step {e.step}" for e in effects if STEPS[e.step] not in ATOMIC]
    if wrong:
        verdict.problem(f"{len(wrong)} atomic step(s) without exactly one effect", wrong)
    if stray:
        verdict.problem(f"{len(stray)} effect(s) of a step that writes none", stray)
    late = []
    for effect in effects:
        executions = by_task.get(effect.task, [])
        order = list(claim_times(executions))
        if effect.token not in order:
            late.append(f"{effect.task} step {effect.step}: effect by an unlogged claim")
            continue
        later = set(order[order.index(effect.token) + 1 :])
        covers = {effect.step} | {index(n) for n in ancestors(STEPS[effect.step])}
        if any(e.token in later and e.step in covers for e in executions):
            late.append(f"{effect.task} step {effect.step}: written by {effect.token} too late")
    if late:
        verdict.problem(f"{len(late)} effect(s) written after their lease was lost", late)


def check_join(records: DiamondRecords, verdict: Verdict) -> None:
    """Each completed task's join saw every branch's output."""
    wrong = [
        f"{d.id} (#{d.number}): {d.result!r:.200}"
        for d in records.diamonds
        if d.status == "completed" and d.result != expected_result(d.number)
    ]
    if wrong:
        verdict.problem(f"{len(wrong)} join(s) without every branch's output", wrong)


def running_at(records: DiamondRecords, moment: float, pid: int | None) -> dict[str, int]:
    """For each task: how many of its branches the process ``pid`` ran at ``moment``."""
    ends = {(d.task, d.step, d.attempt, d.token): d.t for d in records.done}
    running: Counter[str] = Counter()
    for e in records.executions.executions:
        if e.pid != pid or STEPS[e.step] not in BRANCHES or e.t > moment:
            continue
        if ends.get((e.task, e.step, e.attempt, e.token), math.inf) >= moment:
            running[e.task] += 1
    return dict(running)


def parallel_figures(records: DiamondRecords) -> tuple[Counter[str], int]:
    """Faults that hit two branches or more of one task running in their victim, by kind;
    and how many branch executions overlapped another of the same claim."""
    hits: Counter[str] = Counter()
    for fault in records.executions.faults:
        running = running_at(records, fault.start, fault.pid).values()
        if fault.kind in ("kill", "stop") and any(n >= 2 for n in running):
            hits[fault.kind] += 1
    ends = {(d.task, d.step, d.attempt, d.token): d.t for d in records.done}
    spans: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for e in records.executions.executions:
        end = ends.get((e.task, e.step, e.attempt, e.token))
        if STEPS[e.step] in BRANCHES and end is not None:
            spans[e.task, e.token].append((e.t, end))
    overlapping = sum(
        1
        for found in spans.values()
        for i, (a, b) in enumerate(found)
        if any(c < b and a < d for j, (c, d) in enumerate(found) if j != i)
    )
    return hits, overlapping
