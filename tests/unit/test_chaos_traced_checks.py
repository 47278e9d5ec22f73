"""The checks of the fault-injection run's traced workflow and of the workers table
(``benchmarks/faults/traced_checks``) pass on good records and name what is wrong in bad
ones: a span outside its task's trace, a step without a completed span that no kill
explains, a step completed twice, rows left by workers stopped cleanly or alive."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.faults.checks import Fault
from benchmarks.faults.traced_checks import (
    STEPS,
    SUBMIT_SPAN,
    Span,
    Traced,
    TracedRecords,
    WorkerRow,
    check_traced,
    pid_of,
)

TRACE, ROOT = "a" * 32, "1" * 16
T0 = 1_800_000_000.0


def submit_id(n: int) -> str:
    return f"{n:016x}"


def task(n: int, **changes: object) -> Traced:
    good = Traced(
        task=f"task-{n}",
        status="completed",
        root_trace=f"{n:032x}",
        root_span=f"{n + 100:016x}",
        traceparent=f"00-{n:032x}-{submit_id(n)}-01",
        completed={step: ("host:11", T0 + i) for i, step in enumerate(STEPS)},
    )
    return replace(good, **changes)  # type: ignore[arg-type]


def spans_of(t: Traced, outcomes: dict[str, list[str]] | None = None) -> list[Span]:
    """The submit span of ``t`` and its step spans (one completed per step by default)."""
    context = t.traceparent.split("-") if t.traceparent else ["", t.root_trace, "?", ""]
    submit = Span(SUBMIT_SPAN, t.root_trace, context[2], t.root_span, task=t.task)
    out = [submit]
    for i, step in enumerate(STEPS):
        for j, outcome in enumerate((outcomes or {}).get(step, ["completed"])):
            name, span = f"salvador.step chaos-traced.{step}", f"{i}{j}{t.task[-3:]}"
            out.append(Span(name, submit.trace, span, submit.span, task=t.task, step=step,
                            outcome=outcome, worker="host:11"))  # fmt: skip
    return out


def records(
    tasks: list[Traced],
    spans: list[Span] | None = None,
    *,
    faults: list[Fault] | None = None,
    rows: list[WorkerRow] | None = None,
    killed: set[int] | None = None,
    cleanly: set[int] | None = None,
) -> TracedRecords:
    if spans is None:
        spans = [span for t in tasks for span in spans_of(t)]
    return TracedRecords(
        tasks, spans, faults or [],
        [WorkerRow(7, alive=False, gone=True)] if rows is None else rows,
        {7, 8} if killed is None else killed,
        {11, 12, 13} if cleanly is None else cleanly,
    )  # fmt: skip


def test_a_clean_run_passes() -> None:
    verdict = check_traced(records([task(1), task(2)]))
    assert verdict.passed, verdict.problems
    assert verdict.spans == 6
    assert verdict.outcomes == {"completed": 6}
    assert (verdict.killed_rows, verdict.killed_unregistered) == (1, 1)


def test_retries_and_interrupted_attempts_in_the_trace_pass() -> None:
    t = task(1)
    spans = spans_of(t, {"two": ["retrying", "interrupted", "completed"]})
    verdict = check_traced(records([t], spans))
    assert verdict.passed, verdict.problems
    assert verdict.outcomes == {"completed": 3, "retrying": 1, "interrupted": 1}


def test_a_step_span_in_another_trace_fails() -> None:
    t = task(1)
    spans = spans_of(t)
    spans[2] = replace(spans[2], trace="f" * 32)
    spans[3] = replace(spans[3], parent="e" * 16)
    verdict = check_traced(records([t], spans))
    assert not verdict.passed
    assert "2 step span(s) outside the trace of its submit" in verdict.problems[0]


def test_a_submit_span_outside_the_runs_span_fails() -> None:
    t = task(1)
    spans = spans_of(t)
    spans[0] = replace(spans[0], parent=None)
    verdict = check_traced(records([t], spans))
    assert "not under the run's span" in verdict.problems[0]


def test_a_submit_span_never_exported_or_no_context_fails() -> None:
    t, u = task(1), task(2, traceparent=None)
    spans = spans_of(t)[1:] + spans_of(u)
    verdict = check_traced(records([t, u], spans))
    assert any("its submit span" in p and "was not exported" in p for p in verdict.problems)
    assert any("no trace context stored" in p for p in verdict.problems)


def test_a_missing_completed_span_without_a_kill_fails() -> None:
    t = task(1)
    spans = spans_of(t, {"three": ["interrupted"]})
    verdict = check_traced(records([t], spans))
    assert verdict.missing == {"unexplained": 1}
    assert "step three: no completed span" in verdict.problems[0]


def test_a_missing_completed_span_explained_by_a_kill_of_its_worker() -> None:
    t = task(1)
    spans = spans_of(t, {"three": []})
    kill = Fault("kill", T0 + 2.5, T0 + 2.5, pid=11)
    other = Fault("kill", T0 + 2.5, T0 + 2.5, pid=99)
    assert not check_traced(records([t], spans, faults=[other])).passed
    before = Fault("kill", T0 + 1.0, T0 + 1.0, pid=11)  # before the step started
    assert not check_traced(records([t], spans, faults=[before])).passed
    verdict = check_traced(records([t], spans, faults=[kill]))
    assert verdict.passed, verdict.problems
    assert verdict.missing == {"worker killed after its checkpoint, before the export": 1}


def test_a_step_completed_twice_fails() -> None:
    t = task(1)
    verdict = check_traced(records([t], spans_of(t, {"one": ["completed", "completed"]})))
    assert "step one: 2 completed spans" in verdict.problems[0]


def test_a_task_not_completed_fails() -> None:
    t = task(1, status="failed", completed={})
    verdict = check_traced(records([t], []))
    assert "task-1: failed" in verdict.problems[0]


def test_unreadable_span_lines_fail() -> None:
    data = records([task(1)])
    data.unreadable = 2
    assert "2 exported span line(s) were not JSON" in check_traced(data).problems


def test_the_workers_table_at_the_end() -> None:
    rows = [
        WorkerRow(7, alive=False, gone=True),  # killed: fine
        WorkerRow(8, alive=True, gone=False),  # killed, but alive
        WorkerRow(11, alive=False, gone=True),  # stopped cleanly, row left
        WorkerRow(40, alive=False, gone=True),  # neither killed nor stopped
    ]
    verdict = check_traced(records([task(1)], rows=rows))
    problems = "\n".join(verdict.problems)
    assert "1 row(s) left by workers stopped cleanly" in problems
    assert "1 worker row(s) alive after every worker stopped" in problems
    assert "1 row(s) of killed workers not gone" in problems
    assert "1 row(s) of processes neither killed nor stopped by the run" in problems
    assert (verdict.killed_rows, verdict.killed_unregistered) == (2, 0)


def test_pid_of_a_worker_name() -> None:
    assert pid_of("host:123") == 123
    assert pid_of("host:123:child-1") == 123
    assert pid_of("host") is None
    assert pid_of(None) is None
