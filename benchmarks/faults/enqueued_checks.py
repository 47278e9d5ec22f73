"""What the Django tasks' part of a fault-injection run must prove, from its records.

The tasks (:mod:`.enqueued`): Django ``@task`` functions on ``SalvadorBackend``, each a
task of the one-step workflow of its queue (:data:`WORKFLOW`). Each execution appends a
line to their log as it starts (:class:`~.checks.Execution`, step 0, its claim named by
the worker and the claim's time that its ``TaskContext`` gives), works (sleeps), and
returns :func:`expected_value`. A *flaky* task raises on its first attempt; the
backend's retry runs it again.

The checks, for each task the run enqueued (by its number):

- its result, read through the backend (``get_result``), exists, is SUCCESSFUL and
  returned :func:`expected_value`; it has the priority it was enqueued with;
- each execution of a task beyond the first is explained by what stopped the one
  before on its worker (a kill, a pause past the lease, PostgreSQL restarting, its
  heartbeat late, or the attempt failing: :func:`~.checks._explain_duplicates`);
- the result's ``attempts`` and ``worker_ids`` are its step runs' (the attempts our
  tables recorded, oldest first), each of which ran: an execution of that attempt
  by that worker's process is in the log; its ``errors`` are its failed step runs,
  and only a flaky task's first attempt failed;
- no row of the queue that the run did not enqueue, but for a retry of an enqueue
  whose outcome the run never learnt (the database restarting under its commit).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks.faults.checks import (
    Execution,
    Records,
    Verdict,
    _check_observed,
    _check_outcomes,
    _explain_duplicates,
    _explain_executions_after_lease_loss,
    executions_by_task,
)

#: The workflow of the backend's default queue (``TASKS["default"]``).
WORKFLOW = "django.tasks:default"
SUCCESSFUL, FAILED = "SUCCESSFUL", "FAILED"
#: What a flaky task raises on its first attempt (``exception_class_path``).
FLAKY_ERROR = "benchmarks.faults.enqueued.FirstAttemptFails"


def expected_value(number: int) -> dict[str, Any]:
    """What the task enqueued ``number``th returns."""
    return {"number": number, "square": number * number}


@dataclass(frozen=True)
class Enqueued:
    """A task the run enqueued: its number, flaky or not, and its priority."""

    number: int
    id: str
    flaky: bool = False
    priority: int = 0


@dataclass(frozen=True)
class Result:
    """A task's ``TaskResult``, as ``get_result`` returned it at the end."""

    id: str
    number: int  # its first argument
    status: str  # TaskResultStatus's name
    return_value: Any
    priority: int
    attempts: int
    worker_ids: tuple[str, ...]
    errors: tuple[str, ...]  # each error's exception_class_path


@dataclass(frozen=True)
class Attempt:
    """A step run of a task (an attempt our tables recorded), oldest first."""

    task: str
    attempt: int
    status: str
    worker: str


#: A result's worker id of an attempt lost with its worker (salvador_django.tasks.results).
LOST = "(lost)"


@dataclass
class EnqueuedRecords:
    enqueued: list[Enqueued]
    results: list[Result]  # of every row of the queue
    missing: list[str]  # ids enqueued whose get_result raised, with why
    attempts: list[Attempt]
    executions: Records  # their log, statuses, failed attempts and the faults; steps 1
    retried: set[int] = field(default_factory=set)  # numbers whose enqueue raised, tried again
    #: Attempts lost with their worker (the row's lease expiries), by task id.
    lost: dict[str, int] = field(default_factory=dict)


@dataclass
class EnqueuedVerdict(Verdict):
    by_status: Counter[str] = field(default_factory=Counter)  # results, by status
    attempts: Counter[int] = field(default_factory=Counter)  # results, by their attempts
    enqueued_again: int = 0  # rows of an enqueue tried again after an unknown outcome


def pid_of(worker: str) -> int | None:
    """The pid in a worker's id (``host:pid``)."""
    parts = worker.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def check_enqueued(records: EnqueuedRecords) -> EnqueuedVerdict:
    verdict = EnqueuedVerdict()
    runs = records.executions
    _check_outcomes(runs, verdict)
    by_task = executions_by_task(runs.executions)
    _check_observed(runs, by_task, verdict)
    check_rows(records, verdict)
    check_results(records, verdict)
    check_attempts(records, by_task, verdict)
    _explain_duplicates(runs, by_task, verdict)
    _explain_executions_after_lease_loss(runs, by_task, verdict)
    return verdict


def check_rows(records: EnqueuedRecords, verdict: EnqueuedVerdict) -> None:
    """Every task enqueued has a result; every row of the queue was enqueued by the run
    (a second row of a number only when its enqueue was tried again)."""
    if records.missing:
        verdict.problem(f"{len(records.missing)} task(s) enqueued without a result",
                        records.missing)  # fmt: skip
    ids = {e.id for e in records.enqueued}
    strangers = [r for r in records.results if r.id not in ids]
    again = [r for r in strangers if r.number in records.retried]
    verdict.enqueued_again = len(again)
    unexplained = [f"{r.id} (#{r.number})" for r in strangers if r.number not in records.retried]
    if unexplained:
        verdict.problem(f"{len(unexplained)} row(s) of the queue the run did not enqueue",
                        unexplained)  # fmt: skip


def check_results(records: EnqueuedRecords, verdict: EnqueuedVerdict) -> None:
    """Each result SUCCESSFUL, with its task's return value and priority."""
    enqueued = {e.id: e for e in records.enqueued}
    wrong = []
    for result in records.results:
        verdict.by_status[result.status] += 1
        verdict.attempts[result.attempts] += 1
        if result.status != SUCCESSFUL:
            wrong.append(f"{result.id} (#{result.number}): {result.status}, {result.errors}")
        elif result.return_value != expected_value(result.number):
            wrong.append(f"{result.id} (#{result.number}) returned {result.return_value!r:.200}")
        own = enqueued.get(result.id)
        if own is not None and (own.number, own.priority) != (result.number, result.priority):
            wrong.append(
                f"{result.id}: enqueued as #{own.number} with priority {own.priority}, "
                f"its result says #{result.number} with priority {result.priority}"
            )
    if wrong:
        verdict.problem(f"{len(wrong)} result(s) not SUCCESSFUL with their value", wrong)


def check_attempts(
    records: EnqueuedRecords, by_task: dict[str, list[Execution]], verdict: EnqueuedVerdict
) -> None:
    """``attempts``, ``worker_ids`` and ``errors`` are the step runs' (after an entry
    for each attempt lost with its worker), each step run an execution in the log, and
    only a flaky task's first attempt failed."""
    runs: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in records.attempts:
        runs[attempt.task].append(attempt)
    flaky = {e.id for e in records.enqueued if e.flaky}
    disagree, unlogged, failed = [], [], []
    for result in records.results:
        own = runs.get(result.id, [])
        lost = records.lost.get(result.id, 0)
        workers = (LOST,) * lost + tuple(a.worker for a in own)
        errors = sum(a.status == "failed" for a in own)
        if (result.attempts, result.worker_ids, len(result.errors)) != (
            lost + len(own),
            workers,
            errors,
        ):
            disagree.append(
                f"{result.id}: attempts {result.attempts}, workers {list(result.worker_ids)}, "
                f"{len(result.errors)} error(s); step runs {len(own)} by {list(workers)}, "
                f"{errors} failed"
            )
        logged = {(e.attempt, e.pid) for e in by_task.get(result.id, [])}
        unlogged += [
            f"{result.id} attempt {a.attempt} by {a.worker}: no execution logged"
            for a in own
            if (a.attempt, pid_of(a.worker)) not in logged
        ]
        expected = [FLAKY_ERROR] if result.id in flaky else []
        if [a.attempt for a in own if a.status == "failed"] != ([1] if expected else []) or list(
            result.errors
        ) != expected:
            failed.append(
                f"{result.id} ({'flaky' if expected else 'not flaky'}): failed attempts "
                f"{[a.attempt for a in own if a.status == 'failed']}, errors {list(result.errors)}"
            )
    if disagree:
        verdict.problem(f"{len(disagree)} result(s) whose attempts are not their step runs",
                        disagree)  # fmt: skip
    if unlogged:
        verdict.problem(f"{len(unlogged)} step run(s) with no execution logged", unlogged)
    if failed:
        verdict.problem(f"{len(failed)} task(s) whose failed attempts are not those expected",
                        failed)  # fmt: skip
