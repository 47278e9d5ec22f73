"""The observability section of ``benchmarks/run.py``: what signals, traces and metrics cost
(issue 18).

Run by the per-backend measuring process (:class:`benchmarks.measure.Measurement`),
last, because it sets an OpenTelemetry SDK in that process:

- The hooks, in this process, with everything off (no receiver of any signal, no
  OpenTelemetry SDK, metrics off): nanoseconds per call of what the engine runs around
  each step attempt (``observe.step_started``, the step's ``logs.task_context`` and
  ``tracing.using``, ``observe.step_finished``, a ``signals.send_on_commit`` of a
  signal nobody listens to) and of ``tracing.enabled()`` alone; the best of
  ``HOOK_ROUNDS`` rounds of ``HOOK_CALLS`` calls, less an empty loop's time. Set
  against the worker's CPU time per step of the "off" bursts below. Then, after the
  bursts, the same with everything on (a ``BatchSpanProcessor`` over an in-memory
  exporter, metrics into a registry of their own, a task carrying a trace context;
  fewer calls): where the "on" bursts' time goes.
- Off against on: ``--tasks`` tasks of the standard workflow (``bench``, 3 no-op steps)
  through one ``runworkflows --burst --concurrency C`` worker, as the throughput
  section's bursts (threads), with observability off (the defaults) and all on
  (``SALVADOR_BENCH_OBSERVE=1``: an OpenTelemetry SDK with a ``BatchSpanProcessor``
  over an in-memory exporter in the worker, and ``SALVADOR["METRICS"] = True``),
  and, to tell the two parts apart, tracing only (the SDK, metrics off) and metrics only
  (``SALVADOR_BENCH_OBSERVE=tracing`` / ``metrics``); ``--repeat`` rounds of the four,
  the order rotated each round; medians, and the drop of each mode's median steps/s
  from the "off" one's. Beside the burst's wall time (spawn to
  exit), two steadier figures: steps/s over the tasks' span in the database (the first
  claim to the last finish), and steps/s less the median empty burst's time of the
  same mode (each round also runs one empty burst per mode: the start-up, imports of
  the SDK and prometheus_client included). The tasks of both are submitted inside
  an SDK of this process, so each carries a trace context: the "on" worker parents its
  spans to it as in production; the "off" one never reads it. Each "on" worker writes
  the spans it exported and the step attempts its counter saw (checked: one of each
  per step).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import history, observed
from benchmarks.servers import log

if TYPE_CHECKING:
    from benchmarks.measure import Measurement

MODES = ("off", "on", "tracing", "metrics")
#: What each mode sets ``SALVADOR_BENCH_OBSERVE`` to in the worker (``benchmarks.observed``).
OBSERVE = {"on": "1", "tracing": "tracing", "metrics": "metrics"}
HOOK_CALLS, HOOK_ROUNDS = 100_000, 7
ON_CALLS, ON_ROUNDS = 5_000, 5
#: The issue's bound on the drop of steps/s with everything on.
TARGET_DROP = 0.10


def measure(m: Measurement) -> dict[str, Any]:
    """Every figure of the observability section for ``m``'s backend."""
    out: dict[str, Any] = {"hooks": hooks_cost(), "tasks": m.tasks, "concurrency": m.concurrency}
    trace_submits()
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    empty: dict[str, list[float]] = {mode: [] for mode in MODES}
    for run in range(m.repeat):
        for mode in MODES[run % len(MODES) :] + MODES[: run % len(MODES)]:
            runs[mode].append(burst(m, mode))
            empty[mode].append(empty_burst(m, mode))
    history.delete_workflow_tasks("bench")
    out["hooks_on"] = hooks_cost(on=True)
    for mode in MODES:
        out[mode] = _medians(runs[mode], statistics.median(empty[mode]))
        out[mode]["empty_burst_seconds_runs"] = empty[mode]
    for key in ("steps_per_second", "steps_per_second_in_db_span", "steps_per_second_net"):
        off_value = out["off"].get(key)
        for mode in MODES[1:]:
            value = out[mode].get(key)
            drop = 1 - value / off_value if off_value and value else None
            out[mode]["drop" + key.removeprefix("steps_per_second")] = drop
        out["drop" + key.removeprefix("steps_per_second")] = out["on"][
            "drop" + key.removeprefix("steps_per_second")
        ]
    off, on = out["off"]["steps_per_second"], out["on"]["steps_per_second"]
    cpu_step_ns = 1e6 * out["off"]["worker_cpu_ms_per_step_median"]
    out["hooks"]["worker_cpu_ns_per_step"] = cpu_step_ns
    out["hooks"]["share_of_cpu_per_step"] = out["hooks"]["per_step_ns"] / cpu_step_ns
    out["hooks"]["wall_ns_per_step"] = 1e9 / off
    out["hooks_on"]["share_of_cpu_per_step"] = out["hooks_on"]["per_step_ns"] / cpu_step_ns
    log(
        m.backend,
        f"observability: off {off:.0f} steps/s, on {on:.0f} steps/s (drop "
        f"{100 * out['drop']:.1f}%); hooks off {out['hooks']['per_step_ns']:.0f} ns/step = "
        f"{100 * out['hooks']['share_of_cpu_per_step']:.3f}% of the worker's CPU per step; "
        f"all on {out['hooks_on']['per_step_ns'] / 1000:.1f} us/step",
    )
    return out


def _medians(runs: list[dict[str, Any]], empty_seconds: float) -> dict[str, Any]:
    """The median run by steps/s, with each run's figures and the other medians."""
    for run in runs:
        net = run["seconds"] - empty_seconds
        run["steps_per_second_net"] = run["tasks"] * 3 / net if net > 0 else None
    ordered = sorted(runs, key=lambda r: r["steps_per_second"])
    median = dict(ordered[len(ordered) // 2])
    median["steps_per_second_runs"] = [r["steps_per_second"] for r in runs]
    median["empty_burst_seconds"] = empty_seconds
    for key in ("worker_cpu_ms_per_step", "steps_per_second_in_db_span", "steps_per_second_net"):
        values = [r[key] for r in runs if r.get(key) is not None]
        median[key + "_runs"] = values
        median[key if key != "worker_cpu_ms_per_step" else key + "_median"] = (
            statistics.median(values) if values else None
        )
    return median


def empty_burst(m: Measurement, mode: str) -> float:
    """The wall time of a burst worker with nothing to do: its start-up and exit."""
    with _worker_env(m, mode, None):
        return m.run_burst(f"observability-empty-{mode}", timeout=120, concurrency=m.concurrency)[0]


def burst(m: Measurement, mode: str) -> dict[str, Any]:
    """One burst of the standard workflow with observability ``mode`` in the worker."""
    with tempfile.TemporaryDirectory(prefix="salvador-bench-observe-") as tmp:
        report = Path(tmp) / "report.json"
        with _worker_env(m, mode, report):
            out = m.burst(f"observability-{mode}", m.concurrency)
        if mode == "on":
            out["recorded"] = _recorded(m, report, out["tasks"] * 3)
    return out


@contextlib.contextmanager
def _worker_env(m: Measurement, mode: str, report: Path | None) -> Iterator[None]:
    saved = dict(m.env)
    for name in (observed.OBSERVE, observed.REPORT, observed.EXPORTER):
        m.env.pop(name, None)
    if mode in OBSERVE:
        m.env[observed.OBSERVE] = OBSERVE[mode]
    if mode == "on" and report is not None:
        m.env[observed.REPORT] = str(report)
    try:
        yield
    finally:
        m.env.clear()
        m.env.update(saved)


def _recorded(m: Measurement, report: Path, steps: int) -> dict[str, Any]:
    """What the "on" worker recorded; an error unless it is one span and one count a step."""
    import json

    recorded: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    if recorded.get("spans") != steps or recorded.get("attempts_counted") != steps:
        m.result["errors"].append(
            f"observability: the 'on' worker recorded {recorded or 'nothing'}, "
            f"not {steps} spans and {steps} step attempts"
        )
    return recorded


def trace_submits() -> None:
    """An OpenTelemetry SDK in this process, so that ``submit()`` stores a trace context
    (its spans are kept nowhere: only the context matters)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from salvador_django import tracing

    if not tracing.enabled():
        trace.set_tracer_provider(TracerProvider())


@contextlib.contextmanager
def _everything_on() -> Iterator[Any]:
    """Within it: spans through a batch processor into memory (the exporter), metrics on."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    from salvador_django import metrics

    exporter = InMemorySpanExporter()
    processor = BatchSpanProcessor(exporter)
    trace.get_tracer_provider().add_span_processor(processor)  # type: ignore[attr-defined]
    metrics.enable(CollectorRegistry())
    try:
        yield exporter
    finally:
        metrics.disable()
        processor.shutdown()


# -- the hooks with everything off


def _per_call_ns(
    call: Callable[[], object], count: int = HOOK_CALLS, rounds: int = HOOK_ROUNDS
) -> float:
    """The best of ``rounds`` rounds: nanoseconds per call, the loop's own time left in."""
    best = float("inf")
    calls = range(count)
    for _ in range(rounds):
        began = time.perf_counter_ns()
        for _ in calls:
            call()
        best = min(best, (time.perf_counter_ns() - began) / count)
    return best


def hooks_cost(on: bool = False) -> dict[str, Any]:
    """Nanoseconds per step of the engine's observability hooks, everything off (or on)."""
    if not on:
        return _hooks_cost(False, HOOK_CALLS, HOOK_ROUNDS)
    with _everything_on() as exporter:
        out = _hooks_cost(True, ON_CALLS, ON_ROUNDS)
        exporter.clear()
    return out


def _hooks_cost(on: bool, count: int, rounds: int) -> dict[str, Any]:
    from django.utils import timezone

    import salvador_django.engine.observe as observe
    from benchmarks.workflows import bench
    from salvador_django import logs, signals, tracing
    from salvador_django.leases import Attempt, Lease
    from salvador_django.models import Task

    listened = any(signal.receivers for signal in signals.SIGNALS)
    if (tracing.enabled(), listened) != (on, on):
        raise RuntimeError(f"observability: the hooks must be measured with everything {on=}")
    task = Task(workflow=bench.name, body={}, state={})
    task.trace_context = tracing.submitted(bench.name, task.id)
    step = bench.steps[0]
    attempt = Attempt(task, Lease(task.pk, "token"), bench, 0, step, 1, timezone.now())
    worker = "bench-worker"

    def around_a_step() -> None:  # what engine.outcome.call_step and the checkpoint run
        observe.step_started(attempt, worker)
        about = {"task_id": str(task.id), "workflow": task.workflow, "worker": worker}
        with logs.task_context(**about, step=step.name, attempt=1), tracing.using(attempt.span):
            pass
        observe.step_finished(attempt, observe.COMPLETED, "default", worker)
        signals.send_on_commit(signals.task_finished, Task, "default", task=task, status="x")

    def started() -> None:
        observe.step_started(attempt, worker)

    def context() -> None:
        with logs.task_context(task_id="t", workflow="w", worker=worker, step="s", attempt=1):
            pass

    def finished() -> None:
        observe.step_finished(attempt, observe.COMPLETED, "default", worker)

    def unheard() -> None:
        signals.send_on_commit(signals.task_finished, Task, "default", task=task, status="x")

    def nothing() -> None:
        pass

    def timed(call: Callable[[], object]) -> float:
        return _per_call_ns(call, count, rounds)

    loop = timed(nothing)
    parts = {
        "step_started": started,
        "task_context": context,
        "step_finished": finished,
        "send_on_commit_unheard": unheard,
        "tracing_enabled": tracing.enabled,
    }
    out: dict[str, Any] = {
        "calls": count,
        "rounds": rounds,
        "empty_call_ns": loop,
        "parts_ns": {name: max(0.0, timed(call) - loop) for name, call in parts.items()},
        "per_step_ns": max(0.0, timed(around_a_step) - loop),
    }
    return out
