"""The checks of the fault-injection run's Django tasks
(``benchmarks/faults/enqueued_checks``) pass on good records and name what is wrong in
bad ones: a task without a result, a row nobody enqueued, a result not SUCCESSFUL or
with another value or priority, attempts that are not the step runs', a step run never
executed, a failure where none was expected, a second execution no fault explains."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.faults.checks import Execution, Fault, Records
from benchmarks.faults.enqueued_checks import (
    FLAKY_ERROR,
    LOST,
    Attempt,
    Enqueued,
    EnqueuedRecords,
    Result,
    check_enqueued,
    expected_value,
    pid_of,
)

T0 = 1_800_000_000.0
WORKER = "host:11"


def tid(n: int) -> str:
    return f"task-{n}"


def execution(n: int, attempt: int = 1, *, pid: int = 11, t: float = 0.0) -> Execution:
    claimed = T0 + n + t
    token = f"host:{pid}@{claimed:.6f}"
    return Execution(claimed + 0.01, tid(n), 0, attempt, pid, token, claimed, T0 + n)


def result(n: int, *, flaky: bool = False, **changes: object) -> Result:
    workers = (WORKER, WORKER) if flaky else (WORKER,)
    good = Result(
        id=tid(n),
        number=n,
        status="SUCCESSFUL",
        return_value=expected_value(n),
        priority=0,
        attempts=len(workers),
        worker_ids=workers,
        errors=(FLAKY_ERROR,) if flaky else (),
    )
    return replace(good, **changes)  # type: ignore[arg-type]


def attempts_of(n: int, *, flaky: bool = False) -> list[Attempt]:
    if flaky:
        return [Attempt(tid(n), 1, "failed", WORKER), Attempt(tid(n), 2, "completed", WORKER)]
    return [Attempt(tid(n), 1, "completed", WORKER)]


def records(
    count: int = 3,
    *,
    flaky: frozenset[int] = frozenset({1}),
    results: list[Result] | None = None,
    attempts: list[Attempt] | None = None,
    executions: list[Execution] | None = None,
    faults: list[Fault] | None = None,
    **changes: object,
) -> EnqueuedRecords:
    """``count`` tasks enqueued and run once each (twice for a flaky one: its first
    attempt failed), every record as a good run leaves it."""
    enqueued = [Enqueued(n, tid(n), n in flaky, 0) for n in range(count)]
    if results is None:
        results = [result(n, flaky=n in flaky) for n in range(count)]
    if attempts is None:
        attempts = [a for n in range(count) for a in attempts_of(n, flaky=n in flaky)]
    if executions is None:
        executions = [execution(n) for n in range(count)]
        executions += [execution(n, 2, t=0.5) for n in flaky if n < count]
    statuses = {r.id: "completed" for r in results}
    failed = {(a.task, 0, a.attempt) for a in attempts if a.status == "failed"}
    runs = Records(statuses, {}, {}, executions, [], failed, faults or [], steps=1)
    made = EnqueuedRecords(enqueued, results, [], attempts, runs)
    return replace(made, **changes)  # type: ignore[arg-type]


def test_a_good_run_passes():
    verdict = check_enqueued(records())
    assert verdict.problems == []
    assert verdict.by_status == {"SUCCESSFUL": 3}
    assert verdict.attempts == {1: 2, 2: 1}
    assert verdict.duplicates == {"retried after the step failed": 1}


def test_a_task_without_a_result_fails():
    made = records(missing=["task-2: TaskResultDoesNotExist('task-2')"])
    assert "1 task(s) enqueued without a result" in check_enqueued(made).problems[0]


def test_a_row_nobody_enqueued_fails_unless_its_enqueue_was_tried_again():
    stranger = result(2, id="task-2b")
    made = records(results=[*records().results, stranger],
                   attempts=[*records().attempts, Attempt("task-2b", 1, "completed", WORKER)],
                   executions=[*records().executions.executions,
                               replace(execution(2), task="task-2b")])  # fmt: skip
    made.executions.statuses["task-2b"] = "completed"
    assert any("1 row(s) of the queue the run did not enqueue" in p
               for p in check_enqueued(made).problems)  # fmt: skip
    verdict = check_enqueued(replace(made, retried={2}))
    assert verdict.problems == []
    assert verdict.enqueued_again == 1


def test_a_result_not_successful_or_with_another_value_or_priority_fails():
    results = [
        result(0, status="FAILED", return_value=None),
        result(1, flaky=True, return_value={"number": 1, "square": 2}),
        result(2, priority=7),
    ]
    problems = check_enqueued(records(results=results)).problems
    assert "3 result(s) not SUCCESSFUL with their value" in problems[0]
    assert "returned {'number': 1, 'square': 2}" in problems[0]


def test_attempts_or_workers_that_are_not_the_step_runs_fail():
    results = records().results
    results[0] = result(0, attempts=2, worker_ids=(WORKER, "host:12"))
    problems = check_enqueued(records(results=results)).problems
    assert problems == [
        "1 result(s) whose attempts are not their step runs\n    task-0: attempts 2, workers "
        "['host:11', 'host:12'], 0 error(s); step runs 1 by ['host:11'], 0 failed"
    ]


def test_an_attempt_lost_with_its_worker_is_counted_first_in_the_result():
    results = records().results
    results[0] = result(0, attempts=2, worker_ids=(LOST, WORKER))
    assert check_enqueued(replace(records(results=results), lost={tid(0): 1})).problems == []
    problems = check_enqueued(records(results=results)).problems  # the row counted none
    assert problems[0].startswith("1 result(s) whose attempts are not their step runs")


def test_a_step_run_without_its_execution_logged_fails():
    attempts = [replace(a, worker="host:12") if a.task == tid(0) else a for a in records().attempts]
    results = records().results
    results[0] = result(0, worker_ids=("host:12",))
    problems = check_enqueued(records(results=results, attempts=attempts)).problems
    assert problems == [
        "1 step run(s) with no execution logged\n    task-0 attempt 1 by host:12: "
        "no execution logged"
    ]


def test_a_failure_where_none_was_expected_fails_and_so_does_none_where_one_was():
    made = records(flaky=frozenset())  # recorded as if none were flaky...
    made.enqueued[1] = Enqueued(1, tid(1), True, 0)  # ...but #1 was, and #0 failed
    made.results[0] = result(0, flaky=True)
    made.attempts[:1] = attempts_of(0, flaky=True)
    made.executions.executions.append(execution(0, 2, t=0.5))
    made.executions.failed_attempts.add((tid(0), 0, 1))
    problems = check_enqueued(made).problems
    assert problems == [
        "2 task(s) whose failed attempts are not those expected"
        f"\n    task-0 (not flaky): failed attempts [1], errors ['{FLAKY_ERROR}']"
        "\n    task-1 (flaky): failed attempts [], errors []"
    ]


def test_a_second_execution_is_explained_by_a_kill_of_its_worker_or_fails():
    again = [*records().executions.executions, execution(2, pid=12, t=4.0)]
    unexplained = check_enqueued(records(executions=again))
    assert unexplained.problems == [
        "1 duplicate execution(s) unexplained\n    task-2 step 0: pid 11 at "
        f"{T0 + 2.01:.3f}, again by pid 12 at {T0 + 6.01:.3f}"
    ]
    killed = Fault("kill", T0 + 2.5, T0 + 2.5, pid=11)
    verdict = check_enqueued(records(executions=again, faults=[killed]))
    assert verdict.problems == []
    assert verdict.duplicates == {"retried after the step failed": 1, "worker killed": 1}


def test_a_task_never_executed_fails():
    executions = [e for e in records().executions.executions if e.task != tid(2)]
    problems = check_enqueued(records(executions=executions)).problems
    assert "1 task(s) without every step observed" in problems[0]


def test_pid_of_a_worker_id():
    assert pid_of("host:42") == 42
    assert pid_of("") is None


def test_a_failed_attempt_explains_its_retry_not_a_second_run_of_itself():
    """Task #1 is flaky: its attempt 1 ran twice before it failed, then attempt 2 ran."""
    again = [*records().executions.executions, execution(1, pid=12, t=0.2)]
    unexplained = check_enqueued(records(executions=again))
    assert unexplained.duplicates == {"retried after the step failed": 1, "unexplained": 1}
    assert unexplained.problems[0].startswith("1 duplicate execution(s) unexplained")
    killed = Fault("kill", T0 + 1.1, T0 + 1.1, pid=11)
    verdict = check_enqueued(records(executions=again, faults=[killed]))
    assert verdict.problems == []
    assert verdict.duplicates == {"retried after the step failed": 1, "worker killed": 1}
