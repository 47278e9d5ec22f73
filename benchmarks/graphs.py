"""The graph section of ``benchmarks/run.py``: parallel steps of one task (issue 16).

Run by the per-backend measuring process (:class:`benchmarks.measure.Measurement`):

- Diamond against straight line: ``--graph-tasks`` tasks of ``bench-diamond`` (one
  no-op step, then four at the same time, then one that joins them: 6 steps) and as
  many of ``bench-line`` (6 no-op steps in a straight line), each through one
  ``runworkflows --burst --concurrency C`` subprocess timed from spawn to exit, as the
  throughput section's bursts; with ``--pool threads`` and ``--pool processes``,
  ``--repeat`` times each (the two alternate which goes first; the median run of each
  is kept). Steps/s, and on PostgreSQL and MariaDB the commits per step (every
  transaction the worker committed, then less one claim per task, then less an empty run's commits).
- Parallel steps: ``--graph-samples`` tasks of ``bench-wide`` (8 independent steps,
  roots, each sleeping 100 ms), submitted one at a time to an idle long-running
  ``runworkflows --concurrency 8`` worker, with ``--pool threads`` and with ``--pool
  processes`` (whose child running the task runs its steps in up to 8 threads). For
  each: the task's ``started_at`` (its claim) to its ``finished_at`` (the database's
  clock, both), against the longest step's 100 ms; beside it the longest step run
  (its ``StepRun``'s start to the time its checkpoint was written: the checkpoints of
  one task are written one at a time), the time from the first step run's checkpoint
  to the last one's, and submit to completed as the script saw it.
  Each worker first runs ``WARMUP_TASKS`` such tasks submitted together, left out:
  they start its threads (and, with ``--pool processes``, every child's) and their
  connections; a child's first task took up to 120 ms more to start its steps.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchmarks import history
from benchmarks.servers import Result, log

if TYPE_CHECKING:
    from benchmarks.measure import Measurement

LINE, DIAMOND, WIDE = "bench-line", "bench-diamond", "bench-wide"
STEPS_PER_TASK = 6  # of the line and of the diamond
WIDE_STEPS, WIDE_SLEEP, WIDE_CONCURRENCY = 8, 0.1, 8
WARMUP_TASKS = 3 * WIDE_CONCURRENCY  # submitted together: every pool child runs some
POOLS = ("threads", "processes")
POLL_SECONDS = 0.005

Row = tuple[str, Callable[[Result], str]]


def measure(m: Measurement) -> dict[str, Any]:
    """Every figure of the graph section for ``m``'s backend."""
    out: dict[str, Any] = {
        "steps_per_task": STEPS_PER_TASK,
        "tasks": m.graph_tasks,
        "concurrency": m.concurrency,
    }
    _clear()
    if m.graph_tasks:
        if m.counts_commits and m.result.get("empty_burst_commits") is None:
            m.measure_startup()  # the commits of an empty run, for the happy path's
        out["bursts"] = {pool: against_line(m, pool) for pool in POOLS}
    if m.graph_samples:
        out["wide"] = {pool: parallel_steps(m, pool) for pool in POOLS}
    _clear()
    return out


def _clear() -> None:
    for workflow in (LINE, DIAMOND, WIDE):
        history.delete_workflow_tasks(workflow)


def against_line(m: Measurement, pool: str) -> dict[str, Any]:
    """Bursts of the diamond and of the straight line, ``repeat`` times each; medians."""
    runs: dict[str, list[dict[str, Any]]] = {LINE: [], DIAMOND: []}
    for run in range(m.repeat):
        order = (LINE, DIAMOND) if run % 2 == 0 else (DIAMOND, LINE)
        for workflow in order:
            runs[workflow].append(
                m.burst(
                    f"graph-{workflow.removeprefix('bench-')}",
                    m.concurrency,
                    pool,
                    workflow=workflow,
                    steps_per_task=STEPS_PER_TASK,
                    count=m.graph_tasks,
                )
            )
            history.delete_workflow_tasks(workflow)
    out: dict[str, Any] = {}
    for workflow, name in ((LINE, "line"), (DIAMOND, "diamond")):
        ordered = sorted(runs[workflow], key=lambda r: r["steps_per_second"])
        out[name] = ordered[len(ordered) // 2]
        out[name]["steps_per_second_runs"] = [r["steps_per_second"] for r in runs[workflow]]
    out["ratio"] = out["diamond"]["steps_per_second"] / out["line"]["steps_per_second"]
    log(
        m.backend,
        f"graph ({pool}, concurrency {m.concurrency}): diamond "
        f"{out['diamond']['steps_per_second']:.0f} steps/s, straight line "
        f"{out['line']['steps_per_second']:.0f} steps/s (x{out['ratio']:.2f})",
    )
    return out


def run_wide(m: Measurement, i: int) -> dict[str, float]:
    """Submit one ``bench-wide`` task, wait for it; its figures (seconds)."""
    from django.db.models import Max, Min

    from salvador_django import submit
    from salvador_django.models import StepRun, Task

    submitted = time.time()
    task_id = submit(WIDE, {"i": i, "sleep": WIDE_SLEEP}).pk
    status, _ = m._wait_done(task_id, timeout=60, every=POLL_SECONDS)
    seen = time.time() - submitted
    task = Task.objects.get(pk=task_id)
    runs = list(StepRun.objects.filter(task_id=task_id).values_list("started_at", "finished_at"))
    if status != "completed" or len(runs) != WIDE_STEPS or task.started_at is None:
        raise RuntimeError(f"graph: task {task_id} ended {status} with {len(runs)} step runs")
    assert task.finished_at is not None
    starts = StepRun.objects.filter(task_id=task_id).aggregate(
        first=Min("started_at"),
        last=Max("started_at"),
        first_end=Min("finished_at"),
        end=Max("finished_at"),
    )
    return {
        "span": (task.finished_at - task.started_at).total_seconds(),
        "seen": seen,
        "longest": max((end - start).total_seconds() for start, end in runs),
        "first_start": (starts["first"] - task.started_at).total_seconds(),
        "last_start": (starts["last"] - task.started_at).total_seconds(),
        "checkpoints": (starts["end"] - starts["first_end"]).total_seconds(),
        "after_last": (task.finished_at - starts["end"]).total_seconds(),
    }


def warm_up(m: Measurement) -> None:
    """Submit ``WARMUP_TASKS`` wide tasks at once and wait until they have all completed."""
    from salvador_django import submit
    from salvador_django.models import Task

    ids = [submit(WIDE, {"i": -1 - i, "sleep": WIDE_SLEEP}).pk for i in range(WARMUP_TASKS)]
    for task_id in ids:
        m._wait_done(task_id, timeout=120, every=0.05)
    left = Task.objects.filter(pk__in=ids).exclude(status="completed").count()
    if left:
        raise RuntimeError(f"graph: {left} warm-up task(s) did not complete")


def parallel_steps(m: Measurement, pool: str) -> dict[str, Any]:
    """``graph_samples`` wide tasks, one at a time, on ``--concurrency 8 --pool POOL``."""
    with m.running_worker(f"graph-wide-{pool}", concurrency=WIDE_CONCURRENCY, pool=pool):
        warm_up(m)
        samples = [run_wide(m, i) for i in range(m.graph_samples)]
    history.delete_workflow_tasks(WIDE)
    spans = [s["span"] for s in samples]
    out: dict[str, Any] = {
        "pool": pool,
        "concurrency": WIDE_CONCURRENCY,
        "steps": WIDE_STEPS,
        "step_seconds": WIDE_SLEEP,
        "span_ms_runs": [1000 * x for x in spans],
        "span_ms": {"median": 1000 * statistics.median(spans), "max": 1000 * max(spans)},
        "ratio": {"median": statistics.median(spans) / WIDE_SLEEP, "max": max(spans) / WIDE_SLEEP},
        "longest_step_ms": {"median": 1000 * statistics.median(s["longest"] for s in samples)},
        "checkpoints_ms": {"median": 1000 * statistics.median(s["checkpoints"] for s in samples)},
        "seen_ms": {
            "median": 1000 * statistics.median(s["seen"] for s in samples),
            "max": 1000 * max(s["seen"] for s in samples),
        },
        "first_start_ms": {"median": 1000 * statistics.median(s["first_start"] for s in samples)},
        "last_start_ms": {"median": 1000 * statistics.median(s["last_start"] for s in samples)},
        "samples_ms": [{k: round(1000 * v, 1) for k, v in s.items()} for s in samples],
        "after_last_ms": {"median": 1000 * statistics.median(s["after_last"] for s in samples)},
    }
    log(
        m.backend,
        f"graph: {WIDE_STEPS} x {1000 * WIDE_SLEEP:.0f} ms steps ({pool}, concurrency "
        f"{WIDE_CONCURRENCY}): started -> finished median {out['span_ms']['median']:.0f} ms, "
        f"max {out['span_ms']['max']:.0f} ms (x{out['ratio']['median']:.2f}, "
        f"max x{out['ratio']['max']:.2f})",
    )
    return out


# -- the report


def _fmt(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def rows(concurrency: int) -> list[Row]:
    """The graph table's rows; each column is a backend's ``graph`` figures."""

    def burst(pool: str, name: str, key: str, digits: int = 0) -> Callable[[Result], str]:
        return lambda g: _fmt(g.get("bursts", {}).get(pool, {}).get(name, {}).get(key), digits)

    def each(pool: str, name: str) -> Callable[[Result], str]:
        def get(g: Result) -> str:
            values = g.get("bursts", {}).get(pool, {}).get(name, {}).get("steps_per_second_runs")
            return ", ".join(f"{v:.0f}" for v in values) if values else "-"

        return get

    def ratio(pool: str) -> Callable[[Result], str]:
        def get(g: Result) -> str:
            value = g.get("bursts", {}).get(pool, {}).get("ratio")
            return "-" if value is None else f"{value:.2f}x"

        return get

    def both(pool: str, key: str) -> Callable[[Result], str]:
        def get(g: Result) -> str:
            b = g.get("bursts", {}).get(pool, {})
            d, line = b.get("diamond", {}).get(key), b.get("line", {}).get(key)
            return "-" if d is None or line is None else f"{d:.3f} / {line:.3f}"

        return get

    def wide(pool: str, key: str, digits: int = 0, unit: str = "") -> Callable[[Result], str]:
        def get(g: Result) -> str:
            w = g.get("wide", {}).get(pool, {}).get(key)
            if not w:
                return "-"
            if "max" not in w:
                return f"{w['median']:.{digits}f}{unit}"
            return f"{w['median']:.{digits}f}{unit} / {w['max']:.{digits}f}{unit}"

        return get

    def starts(pool: str) -> Callable[[Result], str]:
        first, last = wide(pool, "first_start_ms", 1), wide(pool, "last_start_ms", 1)
        return lambda g: "-" if first(g) == "-" else f"{first(g)} / {last(g)}"

    out: list[Row] = []
    for pool in POOLS:
        out += [
            (f"diamond steps/s, --pool {pool} -c {concurrency}", burst(
                pool, "diamond", "steps_per_second")),
            ("  each run", each(pool, "diamond")),
            (f"straight line of 6 steps/s, --pool {pool}", burst(pool, "line", "steps_per_second")),
            ("  each run", each(pool, "line")),
            ("  diamond / straight line", ratio(pool)),
            ("  commits/step, diamond / line (PG, MariaDB)", both(pool, "commits_per_step")),
            ("  (commits - claims)/step, diamond / line (PG, MariaDB)", both(
                pool, "commits_minus_claims_per_step")),
            ("  same, minus an empty run's commits (PG, MariaDB)", both(
                pool, "happy_path_commits_per_step")),
        ]  # fmt: skip
    for pool in POOLS:
        label = (
            f"{WIDE_STEPS} x {1000 * WIDE_SLEEP:.0f} ms roots, -c {WIDE_CONCURRENCY} --pool {pool}"
        )
        out += [
            (f"{label}: started -> finished, median / max ms", wide(pool, "span_ms")),
            ("  / the longest step (100 ms), median / max", wide(pool, "ratio", 2, "x")),
            ("  longest step run (start -> its checkpoint), median ms", wide(
                pool, "longest_step_ms", 1)),
            ("  first -> last step run's checkpoint, median ms", wide(
                pool, "checkpoints_ms", 1)),
            ("  first / last step's start after the claim, median ms", starts(pool)),
            ("  finished after the last step run ended, median ms", wide(
                pool, "after_last_ms", 1)),
            ("  submit -> completed seen, median / max ms", wide(pool, "seen_ms")),
        ]  # fmt: skip
    return out


def targets(measured: dict[str, Result]) -> list[tuple[str, bool | None, str]]:
    """The targets of the graph section (issue 16), printed, never asserted."""
    out: list[tuple[str, bool | None, str]] = []
    for backend, r in measured.items():
        graph = r.get("graph", {})
        for pool, wide in graph.get("wide", {}).items():
            ratio = wide["ratio"]
            out.append(
                (
                    f"{WIDE_STEPS} independent {1000 * WIDE_SLEEP:.0f} ms steps on --concurrency "
                    f"{WIDE_CONCURRENCY} <= 1.3 x the longest step, --pool {pool} ({backend})",
                    ratio["median"] <= 1.3,
                    f"median {ratio['median']:.2f}x, max {ratio['max']:.2f}x "
                    f"({wide['span_ms']['median']:.0f} / {wide['span_ms']['max']:.0f} ms)",
                )
            )
        for pool, bursts in graph.get("bursts", {}).items():
            happy = bursts.get("line", {}).get("happy_path_commits_per_step")
            if happy is None:
                continue
            out.append(
                (
                    f"straight line of the graph section <= 1.0 commit per step besides claims, "
                    f"--pool {pool} ({backend})",
                    happy <= 1.0 + 1e-3,
                    f"{happy:.3f} (diamond "
                    f"{_fmt(bursts.get('diamond', {}).get('happy_path_commits_per_step'), 3)})",
                )
            )
    return out
