"""What the fan-out workflow's part of a fault-injection run must prove, from its records.

The records: the parents the run submitted (by their number) and their rows; the
children's rows (parent, step, key, body, status); the children's executions and
effects, as for the three-step workflow (:mod:`.checks`, with one step); each run of
a parent's step (when its claim took the parent); and what the run saw each time
it sampled the waiting parents.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.faults.checks import Records, Verdict, check

#: The parent workflow (``benchmarks.faults.fan_out``), the child workflow
#: (``benchmarks.faults.workflows``), how many children each parent starts, and in
#: which step.
WORKFLOW = "chaos-fan-out"
CHILD = "chaos-child"
CHILDREN = 20
STEP = "spread"
UNFINISHED = ("pending", "running", "waiting", "paused")


def child_key(n: int, *, use_map: bool) -> str:
    """The key of a parent's ``n``th child (from 0): given to ``map``, or positional."""
    return f"item-{n}" if use_map else f"#{n + 1}"


def parent_body(number: int, work: list[float], *, use_map: bool) -> dict[str, Any]:
    """The body of the parent submitted ``number``th; ``work``: its children's sleeps."""
    return {"number": number, "work": work, "map": use_map}


def child_body(number: int, n: int, work: float) -> dict[str, Any]:
    """The body of the ``n``th child of the parent submitted ``number``th."""
    return {"parent": number, "n": n, "work": [work]}


def expected_results(number: int) -> list[list[int]]:
    """The result of the parent submitted ``number``th: its children's, in order."""
    return [[number, n] for n in range(CHILDREN)]


@dataclass(frozen=True)
class Parent:
    id: str
    number: int  # from its body
    uses_map: bool
    status: str
    children_left: int | None
    result: Any  # its return value (JSON), None unless completed
    error: str = ""


@dataclass(frozen=True)
class Child:
    id: str
    parent: str | None
    parent_step: str
    key: str
    status: str
    number: int  # its body's: the parent's number
    n: int  # its body's: its own number
    finished: float | None = None


@dataclass(frozen=True)
class ParentStart:
    """A run of a parent's step began (the children's log, ``event``: ``parent``)."""

    t: float
    task: str
    step: int
    pid: int
    token: str
    claimed: float  # when its claim took the parent
    due: float  # when the parent was due then (woken: its ``run_after``)


@dataclass(frozen=True)
class Seen:
    """Seen at ``at``: the parent ``task`` waiting, with ``children_left`` in its row while
    ``unfinished`` of its awaited children had not finished (in one statement)."""

    at: float
    task: str
    children_left: int | None
    unfinished: int

    @property
    def wrong(self) -> bool:
        """A waiting parent's count must be its unfinished awaited children, never 0."""
        return self.children_left != self.unfinished or not self.unfinished


@dataclass
class FanOutRecords:
    """Everything the fan-out checks read."""

    submitted: dict[int, str]  # number -> the id its submission returned
    parents: list[Parent]
    children: list[Child]
    executions: Records  # the children's, for :func:`.checks.check`
    starts: list[ParentStart] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)  # samples where ``Seen.wrong``


@dataclass
class FanOutVerdict(Verdict):
    #: Seconds from each parent's last child finishing until it was due again (woken),
    #: and until a worker's claim took it (resumed).
    woken: list[float] = field(default_factory=list)
    resumed: list[float] = field(default_factory=list)

    def delays(self) -> dict[str, dict[str, float]]:
        return {"woken": _spread(self.woken), "resumed": _spread(self.resumed)}


def _spread(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {
        "median": round(statistics.median(seconds), 3),
        "p99": round(sorted(seconds)[int(0.99 * (len(seconds) - 1))], 3),
        "max": round(max(seconds), 3),
    }


def check_fan_out(records: FanOutRecords) -> FanOutVerdict:
    verdict = FanOutVerdict()
    check_parents_completed(records, verdict)
    check_children_once(records, verdict)
    check_none_left_waiting(records, verdict)
    children = check(records.executions)
    verdict.problems += [f"children: {problem}" for problem in children.problems]
    verdict.duplicates, verdict.after_lease_loss = children.duplicates, children.after_lease_loss
    verdict.recoveries = children.recoveries
    verdict.woken, verdict.resumed = resume_delays(records)
    return verdict


def _children_of(records: FanOutRecords) -> dict[str | None, list[Child]]:
    by_parent: dict[str | None, list[Child]] = defaultdict(list)
    for child in records.children:
        by_parent[child.parent].append(child)
    return by_parent


def _statuses(children: list[Child]) -> dict[str, int]:
    return dict(Counter(child.status for child in children))


def check_parents_completed(records: FanOutRecords, verdict: Verdict) -> None:
    """Each parent submitted is there; each that finished completed, with its children's
    results in order (one not finished is :func:`check_none_left_waiting`'s)."""
    ids = {parent.id for parent in records.parents}
    lost = [f"#{n}: {task}" for n, task in sorted(records.submitted.items()) if task not in ids]
    if lost:
        verdict.problem(f"{len(lost)} parent(s) submitted without a row", lost)
    strangers = [p.id for p in records.parents if p.id not in set(records.submitted.values())]
    if strangers:
        verdict.problem(f"{len(strangers)} parent(s) the run did not submit", strangers)
    children = _children_of(records)
    ended = [
        f"{p.id} {p.status}: {p.error[:200]!r}; children {_statuses(children.get(p.id, []))}"
        for p in records.parents
        if p.status not in ("completed", *UNFINISHED)
    ]
    if ended:
        verdict.problem(f"{len(ended)} parent(s) failed or cancelled", ended)
    wrong = []
    for parent in records.parents:
        expected = expected_results(parent.number)
        if parent.status == "completed" and parent.result != expected:
            got = parent.result if isinstance(parent.result, list) else []
            at = next(
                (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None
            )
            where = f"first difference at {at}" if at is not None else f"{len(got)} result(s)"
            wrong.append(f"{parent.id} (#{parent.number}): {where}: {parent.result!r:.200}")
    if wrong:
        verdict.problem(f"{len(wrong)} parent(s) completed without their children's results", wrong)


def check_children_once(records: FanOutRecords, verdict: Verdict) -> None:
    """Each parent has exactly one child per key, of its step, for each of its
    ``CHILDREN``; each child's body is the one its key was given; every child that ran
    has a row, and every child has a parent of the run."""
    parents = {parent.id: parent for parent in records.parents}
    twice, missing, unexpected, mismatched = [], [], [], []
    for task, children in _children_of(records).items():
        parent = parents.get(task) if task is not None else None
        if parent is None:
            continue
        keys = Counter((child.parent_step, child.key) for child in children)
        twice += [
            f"{task} key {key!r}: {count} children"
            for (_, key), count in sorted(keys.items())
            if count > 1
        ]
        expected = {(STEP, child_key(n, use_map=parent.uses_map)): n for n in range(CHILDREN)}
        missing += [f"{task} key {key!r}" for step, key in sorted(set(expected) - set(keys))]
        unexpected += [
            f"{task} step {step!r} key {key!r}" for step, key in sorted(set(keys) - set(expected))
        ]
        mismatched += [
            f"{task} key {child.key!r}: body of #{child.number} child {child.n}"
            for child in children
            if (child.parent_step, child.key) in expected
            and (child.number, child.n) != (parent.number, expected[child.parent_step, child.key])
        ]
    for text, found in (
        ("key(s) with more than one child", twice),
        ("key(s) of a parent without a child", missing),
        ("child(ren) under a key their parent never gave", unexpected),
        ("child(ren) whose body is not the one of their key", mismatched),
    ):
        if found:
            verdict.problem(f"{len(found)} {text}", found)
    orphans = [f"{c.id} (parent {c.parent})" for c in records.children if c.parent not in parents]
    if orphans:
        verdict.problem(f"{len(orphans)} child(ren) without a parent of the run", orphans)
    rows = {child.id for child in records.children}
    ghosts = sorted({e.task for e in records.executions.executions} - rows)
    if ghosts:
        verdict.problem(f"{len(ghosts)} child(ren) ran without a row", ghosts)


def check_none_left_waiting(records: FanOutRecords, verdict: Verdict) -> None:
    """No parent or child is unfinished at the end; no sample saw a waiting parent whose
    count disagreed with its awaited children (0 while waiting, or not their number)."""
    children = _children_of(records)
    parents = [
        f"{p.id} {p.status}, children_left {p.children_left}, "
        f"children {_statuses(children.get(p.id, []))}"
        for p in records.parents
        if p.status in UNFINISHED
    ]
    if parents:
        verdict.problem(f"{len(parents)} parent(s) left unfinished", parents)
    left = [
        f"{c.id} {c.status} (parent {c.parent})" for c in records.children if c.status in UNFINISHED
    ]
    if left:
        verdict.problem(f"{len(left)} child(ren) left unfinished", left)
    seen = [
        f"at {s.at:.3f}: {s.task} waiting, children_left {s.children_left}, "
        f"{s.unfinished} awaited child(ren) unfinished"
        for s in records.seen
        if s.wrong
    ]
    if seen:
        verdict.problem(
            f"{len(seen)} time(s) a waiting parent's count of children left was wrong", seen
        )


def resume_delays(records: FanOutRecords) -> tuple[list[float], list[float]]:
    """For each completed parent: from its last child's end until it was due again, and
    until a claim took it: the first claim after that end (its children were written
    by the wait that ended the run before, so none could finish before it).
    Both clocks are the database's."""
    children = _children_of(records)
    starts: dict[str, list[ParentStart]] = defaultdict(list)
    for start in records.starts:
        starts[start.task].append(start)
    woken, resumed = [], []
    for parent in records.parents:
        ends = [c.finished for c in children.get(parent.id, []) if c.finished is not None]
        if parent.status != "completed" or not ends:
            continue
        last = max(ends)
        after = [s for s in starts.get(parent.id, []) if s.claimed >= last]
        if after:
            first = min(after, key=lambda s: s.claimed)
            woken.append(max(0.0, first.due - last))
            resumed.append(max(0.0, first.claimed - last))
    return woken, resumed
