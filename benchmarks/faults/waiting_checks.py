"""What the waiting workflow's part of a fault-injection run must prove, from its records.

The records: the signals the run sent (some twice, with the same idempotency key),
the ``Signal`` and ``Wait`` rows, what each wait for a signal returned as its step
saw it (``Received`` rows, committed with the step), the waits log (each step run's
start, and each time a timer ended a wait, with the database's clock then), the
pauses the run made, and what it saw each time it sampled the waiting tasks.

Payloads are compared as canonical JSON (``json.dumps(..., sort_keys=True)``); each
signal the run sends carries a payload of its own, so a payload names its signal.
"""

from __future__ import annotations

import itertools
import math
import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from benchmarks.faults.checks import DATABASE_RESTARTS, Fault, Verdict

#: The waiting workflow (``benchmarks.faults.waiting``), and the signals each of its
#: tasks takes, in order, whatever times out.
WORKFLOW = "chaos-waits"
SIGNALS = ("first", "second", "item", "item")
#: Outcomes of a wait that a timer ended.
TIMER_OUTCOMES = ("slept", "timed out")


@dataclass(frozen=True)
class Sent:
    """A signal the run sent; ``again`` for a second send with the same idempotency key.

    ``outcome``: ``sent`` (the call returned the signal ``signal``), ``refused``
    (the task had finished) or the error that the call still raised after retries.
    """

    task: str
    name: str
    key: str
    payload: str
    again: bool
    outcome: str
    signal: int | None = None


@dataclass(frozen=True)
class SignalRow:
    id: int
    task: str
    name: str
    key: str | None
    payload: str
    sent_at: float
    consumed_at: float | None
    consumed_by: str


@dataclass(frozen=True)
class Received:
    """What a wait for a signal returned, as its step recorded it."""

    task: str
    step: str
    position: int
    name: str
    payload: str


@dataclass(frozen=True)
class WaitRow:
    task: str
    step: str
    position: int
    kind: str
    name: str
    until: float | None
    started_at: float
    outcome: str
    signal: int | None = None


@dataclass(frozen=True)
class Woke:
    """A step run saw a timer end its wait (a sleep returned, or ``WaitTimeout``)."""

    task: str
    step: str
    position: int
    outcome: str
    db_now: float  # the database's clock just after
    pid: int
    t: float
    due: float  # when the task was due again (its row's run_after): when the timer fired
    claimed: float  # when the claim that ran the step took it

    @property
    def fired(self) -> float:
        return self.due


@dataclass(frozen=True)
class StepStart:
    task: str
    step: str
    pid: int
    t: float
    due: float = 0.0  # the task's run_after, as its claim found it
    claimed: float = 0.0


@dataclass(frozen=True)
class Failure:
    """An attempt of a step that raised (its retry is due later: a new ``run_after``)."""

    task: str
    step: str
    finished: float
    error: str


@dataclass(frozen=True)
class Pause:
    """The run paused ``task`` (``pause()`` called at ``start``) until it resumed it at ``end``."""

    task: str
    start: float
    end: float


@dataclass(frozen=True)
class Stuck:
    """Seen at ``at``: ``task`` waiting for ``name`` while the signal ``signal`` of that
    name was there, undelivered."""

    at: float
    task: str
    name: str
    signal: int


@dataclass
class WaitRecords:
    """Everything the waiting checks read."""

    statuses: dict[str, str]  # task id -> status
    waiting_for: dict[str, str]  # task id -> the signal it waits for ("" if none)
    sent: list[Sent]
    signals: list[SignalRow]
    received: list[Received]
    waits: list[WaitRow]
    woke: list[Woke] = field(default_factory=list)
    starts: list[StepStart] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    stuck: list[Stuck] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: (due, first claimed) of the tasks of either workflow: the queue's backlog.
    queue: list[tuple[float, float]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    #: When each worker (pid) started its first step, of either workflow: up by then.
    ready: dict[int, float] = field(default_factory=dict)
    #: How late a timer may be: a lease, a sweep and some polls.
    late_limit: float = 5.0
    #: SQLite: a worker paused in an atomic step holds the write lock, stalling all.
    stop_stalls_all: bool = False


@dataclass
class WaitVerdict(Verdict):
    #: Seconds after each timer was due: until it fired, until its step restarted.
    fired: list[float] = field(default_factory=list)
    restarted: list[float] = field(default_factory=list)
    late: Counter[str] = field(default_factory=Counter)  # over the limit, by cause
    moments: Counter[str] = field(default_factory=Counter)  # when signals met their waits

    def timers(self) -> dict[str, Any]:
        return {
            "count": len(self.fired),
            "fired": _spread(self.fired),
            "restarted": _spread(self.restarted),
        }


def _spread(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {
        "median": round(statistics.median(seconds), 3),
        "p99": round(sorted(seconds)[int(0.99 * (len(seconds) - 1))], 3),
        "max": round(max(seconds), 3),
    }


def check_waits(records: WaitRecords) -> WaitVerdict:
    verdict = WaitVerdict()
    check_waiting_tasks_completed(records, verdict)
    check_signals_consumed_once(records, verdict)
    check_none_left_waiting(records, verdict)
    check_timers(records, verdict)
    verdict.moments = signal_moments(records)
    return verdict


def check_waiting_tasks_completed(records: WaitRecords, verdict: Verdict) -> None:
    """Every task completed, every wait ended, and each took all its signals."""
    not_completed = {t: s for t, s in records.statuses.items() if s != "completed"}
    if not_completed:
        verdict.problem(
            f"{len(not_completed)} waiting task(s) not completed: "
            f"{dict(Counter(not_completed.values()))}",
            (
                f"{t} {s}, waiting for {records.waiting_for.get(t)!r}"
                for t, s in sorted(not_completed.items())
            ),
        )
    open_waits = [f"{w.task} {w.step}#{w.position}" for w in records.waits if not w.outcome]
    if open_waits:
        verdict.problem(f"{len(open_waits)} wait(s) never ended", open_waits)
    taken = Counter(r.task for r in records.received)
    short = [
        f"{task}: {taken.get(task, 0)} signal(s) received"
        for task in records.statuses
        if taken.get(task, 0) != len(SIGNALS)
    ]
    if short:
        verdict.problem(
            f"{len(short)} waiting task(s) without exactly {len(SIGNALS)} signals received",
            short,
        )


def check_signals_consumed_once(records: WaitRecords, verdict: Verdict) -> None:
    """Each signal sent is stored once, consumed once, by the one wait that returned it.

    A second send with the same idempotency key stores nothing. The wait that took a
    signal is found by its payload among what the waits returned; ``consumed_by``
    (and the ``Wait`` row's signal) must name that wait, no other wait may have
    returned the same signal, and a step's waits of one name take them in order.
    """
    failed = [f"{s.task} {s.key}: {s.outcome}" for s in records.sent if _send_failed(s)]
    if failed:
        verdict.problem(f"{len(failed)} signal send(s) failed", failed)
    rows = defaultdict(list)
    for row in records.signals:
        rows[row.task, row.key].append(row)
    keys = {(s.task, s.key) for s in records.sent}
    stored = [
        f"{task} {key}: {len(rows.get((task, key), []))} row(s)"
        for task, key in sorted(keys)
        if len(rows.get((task, key), [])) != 1
    ]
    if stored:
        verdict.problem(f"{len(stored)} signal(s) sent not stored exactly once", stored)
    strangers = [
        f"{row.task} {row.name} #{row.id}"
        for row in records.signals
        if (row.task, row.key) not in keys
    ]
    if strangers:
        verdict.problem(f"{len(strangers)} signal(s) stored that the run did not send", strangers)
    wrong_id = [
        f"{s.task} {s.key}: the send returned #{s.signal}"
        for s in records.sent
        if s.signal is not None and s.signal not in {r.id for r in rows.get((s.task, s.key), [])}
    ]
    if wrong_id:
        verdict.problem(f"{len(wrong_id)} send(s) returned another signal", wrong_id)
    unconsumed = [f"{r.task} {r.name} #{r.id}" for r in records.signals if r.consumed_at is None]
    if unconsumed:
        verdict.problem(f"{len(unconsumed)} signal(s) never consumed", unconsumed)
    _check_receivers(records, verdict)


def _send_failed(sent: Sent) -> bool:
    """A first send must store its signal; a second may find the task finished."""
    return sent.outcome != "sent" and not (sent.again and sent.outcome == "refused")


def _check_receivers(records: WaitRecords, verdict: Verdict) -> None:
    by_payload: dict[tuple[str, str], list[SignalRow]] = defaultdict(list)
    for row in records.signals:
        by_payload[row.task, row.payload].append(row)
    waits = {(w.task, w.step, w.position): w for w in records.waits}
    taken_by: dict[int, list[str]] = defaultdict(list)
    wrong = []
    for got in records.received:
        where = f"{got.step}#{got.position}"
        found = [row for row in by_payload.get((got.task, got.payload), []) if row.name == got.name]
        if len(found) != 1:
            wrong.append(f"{got.task} {where} returned {got.payload}: {len(found)} signal(s) of it")
            continue
        signal = found[0]
        taken_by[signal.id].append(f"{got.task} {where}")
        if signal.consumed_by != where:
            wrong.append(f"{got.task} {where} got #{signal.id}, consumed by {signal.consumed_by!r}")
        wait = waits.get((got.task, got.step, got.position))
        if wait is None or wait.signal != signal.id:
            recorded = None if wait is None else wait.signal
            wrong.append(f"{got.task} {where} got #{signal.id}; its Wait row says #{recorded}")
    if wrong:
        verdict.problem(f"{len(wrong)} wait(s) returned a signal not consumed by them", wrong)
    twice = [f"#{signal}: {', '.join(by)}" for signal, by in taken_by.items() if len(by) > 1]
    if twice:
        verdict.problem(f"{len(twice)} signal(s) returned by two waits", twice)
    nobody = [
        f"{r.task} {r.name} #{r.id} consumed by {r.consumed_by!r}"
        for r in records.signals
        if r.consumed_at is not None and r.id not in taken_by
    ]
    if nobody:
        verdict.problem(f"{len(nobody)} signal(s) consumed that no wait returned", nobody)
    _check_order(records, by_payload, verdict)


def _check_order(
    records: WaitRecords, by_payload: dict[tuple[str, str], list[SignalRow]], verdict: Verdict
) -> None:
    """The waits of one name in a step take that name's signals first in, first out."""
    taken: dict[tuple[str, str, str], list[tuple[int, int]]] = defaultdict(list)
    for got in records.received:
        found = by_payload.get((got.task, got.payload), [])
        if len(found) == 1:
            taken[got.task, got.step, got.name].append((got.position, found[0].id))
    unordered = [
        f"{task} {step}: {name} ids by position {[i for _, i in sorted(pairs)]}"
        for (task, step, name), pairs in taken.items()
        if any(a[1] > b[1] for a, b in pairwise(sorted(pairs)))
    ]
    if unordered:
        verdict.problem(f"{len(unordered)} step(s) took signals out of order", unordered)


def check_none_left_waiting(records: WaitRecords, verdict: Verdict) -> None:
    """No task waits for a signal name while a signal of that name is there, undelivered:
    neither in a sample taken during the run nor at its end."""
    seen = [
        f"at {s.at:.3f}: {s.task} waiting for {s.name!r}, #{s.signal} there" for s in records.stuck
    ]
    undelivered = defaultdict(list)
    for row in records.signals:
        if row.consumed_at is None:
            undelivered[row.task, row.name].append(row.id)
    seen += [
        f"at the end: {task} waiting for {name!r}, #{undelivered[task, name][0]} there"
        for task, status in records.statuses.items()
        if status == "waiting"
        and (name := records.waiting_for.get(task, ""))
        and undelivered.get((task, name))
    ]
    if seen:
        verdict.problem(
            f"{len(seen)} time(s) a task was left waiting for a signal that arrived", seen
        )


def check_timers(records: WaitRecords, verdict: WaitVerdict) -> None:
    """No timer fires early or late; no step restarts early or late after one.

    For each wait a timer ended (a sleep, or a wait for a signal that timed out), the
    earliest step run that saw it end logged when the task was due again (``fired``:
    the row's ``run_after``, which the timer's wake writes) and the database's clock
    just after (``db_now``). The wait was due at its ``until``, or when the run
    resumed the task, if it was paused across that. Over ``late_limit``:

    - a timer that fired late is explained only by an outage (PostgreSQL restarted;
      on SQLite, a paused worker holding the write lock), by no worker being up
      (:func:`first_worker_up`) until less than ``late_limit`` before it fired, or by
      an attempt of the step that failed after the timer fired (the task was due
      again at its retry);
    - a step that restarted late, beyond the queue's backlog when the timer fired
      (:func:`backlog`), by a fault that held it up: a worker that ran the task killed
      or paused, an outage, or no worker up.
    """
    first: dict[tuple[str, str, int], Woke] = {}
    for woke in sorted(records.woke, key=lambda w: w.db_now):
        first.setdefault((woke.task, woke.step, woke.position), woke)
    ahead = backlog(records.queue)
    early, unseen, unexplained = [], [], []
    for wait in records.waits:
        if wait.outcome not in TIMER_OUTCOMES or wait.until is None:
            continue
        where = f"{wait.task} {wait.step}#{wait.position} ({wait.outcome})"
        seen = first.get((wait.task, wait.step, wait.position))
        if seen is None:
            unseen.append(where)
            continue
        resumed = _resumed_then(records, wait.task, seen.fired)
        if seen.db_now < wait.until or (seen.fired < wait.until and not resumed):
            early.append(
                f"{where}: due {wait.until:.3f}, fired {seen.fired:.3f}, ran {seen.db_now:.3f}"
            )
            continue
        due = _due(records, wait.task, wait.until, seen.db_now)
        fired, restarted = max(0.0, seen.fired - due), max(0.0, seen.db_now - due)
        verdict.fired.append(fired)
        verdict.restarted.append(restarted)
        if fired > records.late_limit:
            cause = (
                _retried(records, wait, due, seen.fired)
                or _outage(records, due, seen.fired)
                or _no_worker_up(records, due, seen.fired)
            )
            verdict.late[f"fired late: {cause or 'unexplained'}"] += 1
            if cause is None:
                unexplained.append(
                    f"{where} fired {fired:.2f}s late (due {due:.3f}); faults then: "
                    f"{_between(records.faults, due, seen.fired) or 'none'}"
                )
        elif seen.db_now - seen.fired > records.late_limit + ahead(seen.fired):
            cause = _holdup(records, wait, seen.fired, seen.db_now)
            verdict.late[f"restarted late: {cause or 'unexplained'}"] += 1
            if cause is None:
                unexplained.append(
                    f"{where} restarted {seen.db_now - seen.fired:.2f}s after it fired at "
                    f"{seen.fired:.3f}; backlog {ahead(seen.fired):.2f}s"
                )
        elif seen.db_now - seen.fired > records.late_limit:
            verdict.late["restarted late: queue backlog"] += 1
    if early:
        verdict.problem(f"{len(early)} timer(s) fired or restarted their step early", early)
    if unseen:
        verdict.problem(f"{len(unseen)} wait(s) ended by a timer that no step run saw", unseen)
    if unexplained:
        verdict.problem(
            f"{len(unexplained)} timer(s) more than {records.late_limit:g}s late, unexplained",
            unexplained,
        )


def first_claims(claims: Iterable[tuple[str, float, float]]) -> list[tuple[float, float]]:
    """Of claims (task, due, claimed): each time a task was due, and its first claim then.

    Later claims at the same due time took a task back after its lease was lost: it
    was not waiting in the queue all along.
    """
    first: dict[tuple[str, float], float] = {}
    for task, due, claimed in claims:
        first[task, due] = min(first.get((task, due), math.inf), claimed)
    return [(due, claimed) for (_, due), claimed in first.items()]


def backlog(queue: list[tuple[float, float]]) -> Callable[[float], float]:
    """For a moment t, how long after t tasks that were due before it waited to be
    claimed: from ``queue``, the (due, first claimed) times of every task."""
    ordered = sorted(queue)
    due = [d for d, _ in ordered]
    latest = list(itertools.accumulate((c for _, c in ordered), max))

    def ahead(moment: float) -> float:
        index = bisect_right(due, moment)
        return max(0.0, latest[index - 1] - moment) if index else 0.0

    return ahead


def _due(records: WaitRecords, task: str, until: float, seen: float) -> float:
    """When the wait was due: ``until``, or the end of a pause that lasted past it."""
    due = until
    for pause in records.pauses:
        if pause.task == task and pause.start <= seen and pause.end > due:
            due = pause.end
    return due


def _resumed_then(records: WaitRecords, task: str, moment: float) -> bool:
    """Whether the run may have resumed ``task`` at ``moment`` (the row's ``run_after``
    is then the resume's time, not the timer's)."""
    return any(p.task == task and p.start <= moment <= p.end for p in records.pauses)


def first_worker_up(records: WaitRecords, since: float) -> float | None:
    """The first moment from ``since`` on when a worker was up: it had started a step
    (so its threads, the timers' included, were running), was not killed yet, and was
    not paused. None if no worker was up again."""
    moments = []
    for pid, ready in records.ready.items():
        faults = [f for f in records.faults if f.pid == pid]
        killed = min((f.start for f in faults if f.kind == "kill"), default=math.inf)
        moment = max(ready, since)
        for stop in sorted((f for f in faults if f.kind == "stop"), key=lambda f: f.start):
            if stop.start <= moment < stop.end:
                moment = stop.end
        if moment < killed:
            moments.append(moment)
    return min(moments, default=None)


def _no_worker_up(records: WaitRecords, since: float, until: float) -> str | None:
    up = first_worker_up(records, since)
    if up is not None and until - up <= records.late_limit:
        return "no worker up (killed, paused or starting)"
    return None


def _retried(records: WaitRecords, wait: WaitRow, since: float, until: float) -> str | None:
    """Whether an attempt of the wait's step failed between ``since`` and ``until``:
    the task was then due at its retry, not at its timer."""
    failed = (
        (f.task, f.step) == (wait.task, wait.step) and since <= f.finished <= until
        for f in records.failures
    )
    return "retried after the step failed" if any(failed) else None


def _outage(records: WaitRecords, since: float, until: float) -> str | None:
    """An outage of the database between ``since`` and ``until``."""
    for fault in _between(records.faults, since, until):
        if fault.kind in DATABASE_RESTARTS:
            return DATABASE_RESTARTS[fault.kind]
        if fault.kind == "stop" and records.stop_stalls_all:
            return "worker stopped (SQLite's write lock held)"
    return None


def _holdup(records: WaitRecords, wait: WaitRow, since: float, until: float) -> str | None:
    """A fault between ``since`` and ``until`` that held the woken task up."""
    pids = {s.pid for s in records.starts if s.task == wait.task and since <= s.t <= until}
    for fault in _between(records.faults, since, until):
        if fault.kind == "kill" and fault.pid in pids:
            return "worker killed"
        if fault.kind == "stop" and fault.pid in pids:
            return "worker stopped"
    return _outage(records, since, until) or _no_worker_up(records, since, until)


def _between(faults: list[Fault], since: float, until: float) -> list[Fault]:
    return [fault for fault in faults if since <= fault.end and fault.start <= until]


def signal_moments(records: WaitRecords) -> Counter[str]:
    """When each consumed signal was sent, compared with the wait that took it."""
    waits = {(w.task, w.step, w.position): w for w in records.waits}
    moments: Counter[str] = Counter()
    for row in records.signals:
        step, _, position = row.consumed_by.partition("#")
        wait = waits.get((row.task, step, int(position))) if position.isdigit() else None
        if wait is None:
            continue
        before = waits.get((row.task, step, wait.position - 1))
        if before is not None and before.name == wait.name and before.outcome == "timed out":
            moments["after a timeout"] += 1
        elif row.sent_at <= wait.started_at:
            moments["before its wait"] += 1
        else:
            moments["while waited for"] += 1
    return moments
