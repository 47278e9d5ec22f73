"""What the traced workflow's part of a fault-injection run must prove, from its records,
and what the workers table must show at the end of the run.

The workflow (``chaos-traced``, :mod:`.traced`): three steps that work (sleep) and
commit nothing but their checkpoint. The run submits each task inside a span of its
own (``chaos.traced submit``), so ``submit()``'s ``salvador.submit`` span is its
child and the task stores that span's context; every process exports its spans, one
JSON per line, to a file of its own, with a ``SimpleSpanProcessor``: a span is in the
file as soon as it ends.

The checks, for each task the run submitted:

- completed, with one step run completed per step;
- its trace: the ``salvador.submit`` span named by the task's stored context was
  exported, in the trace of the run's span and parented to it;
- every ``salvador.step`` span of the task is in that trace, parented to that submit
  span, whichever worker ran it and whenever;
- every step has exactly one span with the outcome ``completed``. A step's span ends,
  with its outcome, after its checkpoint commits (its steps are not atomic), and the
  checkpoint is fenced on the claim: two completed spans would be a step completed
  twice. A step with none is explained only by what ended its worker between that
  commit and the export: a SIGKILL of the process that wrote the completed step run
  after the step started, or PostgreSQL restarting then (a commit whose outcome the
  worker never learnt). An attempt killed in the middle of its step exports no span
  at all; that is not a missing span: a later attempt completes the step.

The workers table once every worker has stopped: no row of a worker that was stopped
cleanly (SIGTERM: it removes its row); each row of a worker the run SIGKILLed is gone
(not seen for a lease); none alive; no row of a process that was neither.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from benchmarks.faults.checks import DATABASE_RESTARTS, Fault, Verdict

WORKFLOW = "chaos-traced"
STEPS = ("one", "two", "three")
ROOT_SPAN = "chaos.traced submit"
SUBMIT_SPAN = f"salvador.submit {WORKFLOW}"
STEP_SPAN = "salvador.step "


@dataclass(frozen=True)
class Span:
    """An exported span: its ids (lower-case hex, no ``0x``) and salvador's attributes."""

    name: str
    trace: str
    span: str
    parent: str | None
    task: str | None = None
    step: str | None = None
    outcome: str | None = None
    worker: str | None = None


@dataclass(frozen=True)
class Traced:
    """A task the run submitted: its row, the run's span around its submit, the context
    the task stored (``traceparent``), and its completed step runs (step -> worker, and
    when that run started, epoch seconds)."""

    task: str
    status: str
    root_trace: str
    root_span: str
    traceparent: str | None
    completed: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerRow:
    """A row of the workers table at the end: its process, and whether
    ``WorkerProcess.objects.alive()`` and ``gone()`` had it then."""

    pid: int
    alive: bool
    gone: bool


@dataclass
class TracedRecords:
    tasks: list[Traced]
    spans: list[Span]
    faults: list[Fault]
    rows: list[WorkerRow]
    killed: set[int]  # pids the run SIGKILLed
    stopped_cleanly: set[int]  # pids stopped with SIGTERM at the end, which exited 0
    unreadable: int = 0  # span lines that were not JSON


@dataclass
class TracedVerdict(Verdict):
    missing: Counter[str] = field(default_factory=Counter)  # cause -> completed spans missing
    spans: int = 0  # spans of the workflow's tasks
    outcomes: Counter[str] = field(default_factory=Counter)  # of their step spans
    killed_rows: int = 0  # rows of killed workers (gone)
    killed_unregistered: int = 0  # killed workers that never wrote a row


def pid_of(worker: str | None) -> int | None:
    """The pid in a worker's name (``host:pid``, or ``host:pid:role``)."""
    parts = (worker or "").split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, span id) of a W3C ``traceparent``, or None."""
    parts = (value or "").split("-")
    return (parts[1], parts[2]) if len(parts) == 4 else None


def check_traced(records: TracedRecords) -> TracedVerdict:
    verdict = TracedVerdict()
    by_id = {span.span: span for span in records.spans}
    steps_of: dict[str, list[Span]] = defaultdict(list)
    for span in records.spans:
        if span.name.startswith(STEP_SPAN) and span.task is not None:
            steps_of[span.task].append(span)
    for task in records.tasks:
        step_spans = steps_of.get(task.task, [])
        verdict.spans += len(step_spans)
        verdict.outcomes.update(span.outcome or "-" for span in step_spans)
        if task.status != "completed" or set(task.completed) != set(STEPS):
            verdict.problem(f"{task.task}: {task.status}, steps completed {sorted(task.completed)}")
            continue
        submit = _check_submit(task, by_id, verdict)
        if submit is None:
            continue
        _check_steps(records, task, submit, step_spans, verdict)
    if records.unreadable:
        verdict.problem(f"{records.unreadable} exported span line(s) were not JSON")
    _check_workers(records, verdict)
    return verdict


def _check_submit(task: Traced, by_id: dict[str, Span], verdict: TracedVerdict) -> Span | None:
    """The task's submit span, in the run's trace under the run's span; None if not."""
    context = parse_traceparent(task.traceparent)
    if context is None:
        verdict.problem(f"{task.task}: no trace context stored ({task.traceparent!r})")
        return None
    submit = by_id.get(context[1])
    if submit is None or submit.name != SUBMIT_SPAN:
        verdict.problem(f"{task.task}: its submit span {context[1]} was not exported")
        return None
    if (submit.trace, submit.parent) != (task.root_trace, task.root_span) or context[0] != (
        task.root_trace
    ):
        verdict.problem(
            f"{task.task}: submit span {submit.span} in trace {submit.trace} under "
            f"{submit.parent}, not under the run's span {task.root_span} of {task.root_trace}"
        )
        return None
    return submit


def _check_steps(
    records: TracedRecords,
    task: Traced,
    submit: Span,
    spans: list[Span],
    verdict: TracedVerdict,
) -> None:
    astray = [s for s in spans if (s.trace, s.parent) != (submit.trace, submit.span)]
    if astray:
        verdict.problem(
            f"{task.task}: {len(astray)} step span(s) outside the trace of its submit",
            (f"{s.name} in {s.trace} under {s.parent}" for s in astray),
        )
    completed = Counter(s.step for s in spans if s.outcome == "completed")
    for step in STEPS:
        if completed[step] > 1:
            verdict.problem(f"{task.task} step {step}: {completed[step]} completed spans")
        elif completed[step] == 0:
            worker, started = task.completed[step]
            cause = _missing_cause(records, pid_of(worker), started)
            verdict.missing[cause or "unexplained"] += 1
            if cause is None:
                verdict.problem(
                    f"{task.task} step {step}: no completed span, and its worker ({worker}) "
                    f"was not killed after it started"
                )


def _missing_cause(records: TracedRecords, pid: int | None, started: float) -> str | None:
    for fault in records.faults:
        if fault.end < started:
            continue
        if fault.kind == "kill" and fault.pid == pid:
            return "worker killed after its checkpoint, before the export"
        if fault.kind in DATABASE_RESTARTS:
            return f"{DATABASE_RESTARTS[fault.kind]} under the checkpoint"
    return None


def _check_workers(records: TracedRecords, verdict: TracedVerdict) -> None:
    left = sorted(row.pid for row in records.rows if row.pid in records.stopped_cleanly)
    if left:
        verdict.problem(f"{len(left)} row(s) left by workers stopped cleanly", map(str, left))
    alive = sorted(row.pid for row in records.rows if row.alive)
    if alive:
        verdict.problem(f"{len(alive)} worker row(s) alive after every worker stopped",
                        map(str, alive))  # fmt: skip
    killed = [row for row in records.rows if row.pid in records.killed]
    verdict.killed_rows = len(killed)
    verdict.killed_unregistered = len(records.killed - {row.pid for row in killed})
    not_gone = sorted(row.pid for row in killed if not row.gone)
    if not_gone:
        verdict.problem(f"{len(not_gone)} row(s) of killed workers not gone", map(str, not_gone))
    known = records.killed | records.stopped_cleanly
    strangers = sorted(row.pid for row in records.rows if row.pid not in known)
    if strangers:
        verdict.problem(
            f"{len(strangers)} row(s) of processes neither killed nor stopped by the run",
            map(str, strangers),
        )
