"""The fan-out section of ``benchmarks/run.py``: a parent mapping N no-op children.

Run by the per-backend measuring process (:class:`benchmarks.measure.Measurement`),
against one long-running ``runworkflows`` worker subprocess (``--concurrency`` threads,
as the latency and waits sections run it):

- Resume latency: ``--fan-out-samples`` parents of ``bench-fan-out``, one at a time,
  each mapping ``--fan-out-children`` children of ``bench-child`` (one no-op step
  that returns its ``time.time()`` as it ends). The parent's next step records its
  own start; the resume latency is that minus the last child's ``finished_at`` (the
  database's clock, corrected by the offset of the two clocks measured in the same
  run), written by the transaction that completes it and counts the parent down.
  Beside it: the same from the last child's step returning (the latest of the
  children's results; the child's completing transaction follows), and the start of
  the woken run of the waiting step (before it reads the children's results: the
  replay, from there to the next step's start, is recorded for each size too).
- Fan-out against independent tasks: for each ``--fan-out`` size N, ``--repeat``
  times, one parent of N children, and N independent ``bench-child`` tasks inserted as
  a parent's step inserts its children (``bulk_create`` in batches of 500 in one
  transaction, announced once when it commits). Each is timed from just before its
  submission to its last task's ``finished_at`` (the database's clock, corrected by
  the offset measured in the same run); the two alternate which goes first.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from benchmarks import history, waits
from benchmarks.servers import log, summary_ms

if TYPE_CHECKING:
    from benchmarks.measure import Measurement

CHILD_WORKFLOW = "bench-child"
PARENT_WORKFLOW = "bench-fan-out"
WARMUP_PARENTS = 2  # run first and left out of the figures
BATCH = 500  # as a parent's step writes its children
PARENT_POLL_SECONDS = 0.02
COUNT_POLL_SECONDS = 0.05


def measure(m: Measurement) -> dict[str, Any]:
    """Every figure of the fan-out section for ``m``'s backend."""
    out: dict[str, Any] = {"latency_children": m.fan_out_children}
    _clear()
    offset, error = waits.clock_offset()
    out["clock_offset_ms"], out["clock_offset_uncertainty_ms"] = 1000 * offset, 1000 * error
    with m.running_worker("fan-out"), waits._busy_share() as busy:
        waits._warm_worker(m)
        for _ in range(WARMUP_PARENTS):
            run_parent(m, m.fan_out_children, offset)
        if m.fan_out_samples:
            out["resume"] = resume_latency(m, m.fan_out_samples, offset)
        sizes: dict[str, Any] = {}
        for n in m.fan_out_sizes:
            sizes[str(n)] = against_independent(m, n, offset)
        out["sizes"] = sizes
    out["machine_busy_share"] = busy.get("machine_busy_share")
    _clear()
    return out


def _clear() -> None:
    """Delete the section's tasks (children first) and settle the tables."""
    from salvador_django.models import Task, Wait

    Wait.objects.filter(task__workflow=PARENT_WORKFLOW).delete()
    for workflow in (CHILD_WORKFLOW, PARENT_WORKFLOW, "bench"):
        history.delete_workflow_tasks(workflow)
    if Task.objects.filter(workflow__in=(CHILD_WORKFLOW, PARENT_WORKFLOW)).exists():
        raise RuntimeError("fan-out: tasks of the section were left after deleting them")
    history.settle()


def _wait_for(condition: Any, what: str, timeout: float, every: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"fan-out: {what} after {timeout:.0f}s")
        time.sleep(every)


def run_parent(m: Measurement, n: int, offset: float) -> dict[str, float]:
    """Submit one parent of ``n`` children and wait for it; its figures (seconds)."""
    from django.db.models import Max

    from salvador_django import submit
    from salvador_django.models import Task

    began = time.time()
    parent = submit(PARENT_WORKFLOW, {"children": n}).pk
    status, state = m._wait_done(parent, timeout=60 + n / 20, every=PARENT_POLL_SECONDS)
    children = Task.objects.filter(parent_id=parent)
    done = children.filter(status="completed").count()
    if status != "completed" or done != n:
        raise RuntimeError(f"fan-out: parent {parent} ended {status} with {done}/{n} children")
    finished = children.aggregate(last=Max("finished_at"))["last"].timestamp() - offset
    return {
        "seconds": state["finished_at"] - offset - began,
        "resume": state["resumed_at"] - finished,
        "resume_after_step": state["resumed_at"] - state["last_child_at"],
        "woken": state["woken_at"] - finished,
        "replay": state["resumed_at"] - state["woken_at"],
    }


def run_independent(m: Measurement, n: int, offset: float) -> dict[str, float]:
    """Insert ``n`` independent children-to-be in one transaction; time them to the last."""
    from django.db import transaction
    from django.db.models import Count, Max

    from salvador_django.models import Task
    from salvador_django.queues import announce_on_commit
    from salvador_django.registry import registry
    from salvador_django.submission import new_task

    definition = registry.get(CHILD_WORKFLOW)
    mine = Task.objects.filter(workflow=CHILD_WORKFLOW, parent__isnull=True)
    began = time.time()
    with transaction.atomic():
        tasks = [new_task(definition, {"i": i}) for i in range(n)]
        Task.objects.bulk_create(tasks, batch_size=BATCH)
        announce_on_commit(*tasks)
    inserted = time.time() - began

    def finished() -> bool:
        found = dict(mine.values_list("status").annotate(n=Count("id")).order_by())
        if "failed" in found or "cancelled" in found:
            raise RuntimeError(f"fan-out: independent tasks ended {found}")
        return found.get("completed") == n

    _wait_for(finished, f"{n} independent tasks unfinished", 60 + n / 20, COUNT_POLL_SECONDS)
    last = mine.aggregate(last=Max("finished_at"))["last"]
    return {"seconds": last.timestamp() - offset - began, "insert_seconds": inserted}


def against_independent(m: Measurement, n: int, offset: float) -> dict[str, Any]:
    """A parent of ``n`` children against ``n`` independent tasks, ``repeat`` times each."""
    parents: list[dict[str, float]] = []
    alone: list[dict[str, float]] = []
    for run in range(m.repeat):
        for first in (True, False) if run % 2 == 0 else (False, True):
            _clear()
            if first:
                alone.append(run_independent(m, n, offset))
            else:
                parents.append(run_parent(m, n, offset))
    _clear()
    parent = statistics.median(p["seconds"] for p in parents)
    independent = statistics.median(a["seconds"] for a in alone)
    out: dict[str, Any] = {
        "children": n,
        "fan_out_seconds": parent,
        "fan_out_seconds_runs": [p["seconds"] for p in parents],
        "independent_seconds": independent,
        "independent_seconds_runs": [a["seconds"] for a in alone],
        "independent_insert_seconds_runs": [a["insert_seconds"] for a in alone],
        "ratio": parent / independent,
        "fan_out_ms_per_child": 1000 * parent / n,
        "independent_ms_per_task": 1000 * independent / n,
        "resume_ms_runs": [1000 * p["resume"] for p in parents],
        "replay_ms_runs": [1000 * p["replay"] for p in parents],
    }
    log(
        m.backend,
        f"fan-out of {n:,}: parent {parent:.2f}s, {n:,} independent tasks {independent:.2f}s "
        f"(x{parent / independent:.2f}); {out['fan_out_ms_per_child']:.2f} ms per child; "
        f"resume {', '.join(f'{x:.1f}' for x in out['resume_ms_runs'])} ms",
    )
    return out


def resume_latency(m: Measurement, samples: int, offset: float) -> dict[str, Any]:
    """``samples`` parents of ``fan_out_children`` children, one at a time."""
    runs = [run_parent(m, m.fan_out_children, offset) for _ in range(samples)]
    resume = summary_ms([r["resume"] for r in runs])
    out = {
        "resume_ms": resume,
        "resume_samples_ms": [1000 * r["resume"] for r in runs],
        "resume_after_step_ms": summary_ms([r["resume_after_step"] for r in runs]),
        "woken_ms": summary_ms([r["woken"] for r in runs]),
        "fan_out_ms": summary_ms([r["seconds"] for r in runs]),
    }
    log(
        m.backend,
        f"fan-out resume ({samples} parents of {m.fan_out_children}): p50 {resume['p50']:.1f} ms, "
        f"p95 {resume['p95']:.1f} ms",
    )
    return out
