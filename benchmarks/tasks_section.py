"""The django-tasks section of ``benchmarks/run.py``: one-step Django tasks through our
backend (``SalvadorBackend``) against django-tasks-db's ``db_worker`` on the same database.

Run by the per-backend measuring process (:class:`benchmarks.measure.Measurement`). Both
enqueue the same no-op task through Django's tasks API (``benchmarks/bench_tasks.py``):
ours on the task backend ``default``, theirs on ``database``
(``benchmarks/peers/tasks_db_worker.py``).

- Throughput: ``--tasks`` tasks enqueued up front (batches of ``ENQUEUE_BATCH`` a
  transaction, untimed), then ONE worker process timed from spawn to exit: ours
  ``runworkflows --burst --concurrency C`` (threads, as in the other sections), theirs
  ``db_worker --batch`` (one task at a time). ``--repeat`` times each, medians; every task
  must have succeeded.
- Enqueue -> start: ``--latency-samples`` tasks enqueued one at a time, each in its own
  transaction after a random gap of up to ``POLL_INTERVAL``, to an idle long-running
  worker; start is the task's result (its ``time.time()`` when it began) minus the time
  taken just before ``enqueue()``; "seen" is when ``get_result()`` first told it was done
  (polled every millisecond). ``db_worker`` gets ``--interval POLL_INTERVAL``.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from benchmarks import history
from benchmarks.peers import tasks_db_worker as peer
from benchmarks.servers import log, summary_ms

if TYPE_CHECKING:
    from benchmarks.measure import Measurement

ENQUEUE_BATCH = 500
WARMUP = 5
#: The workflow of our backend's queue "default" (``salvador_django.tasks.queues``).
WORKFLOW = "django.tasks:default"


def measure(m: Measurement) -> dict[str, Any]:
    """Every figure of the django-tasks section for ``m``'s backend."""
    from salvador_django.conf import get_settings

    why = peer.why_not()
    if why:
        log(m.backend, f"django-tasks: skipped: {why}")
        return {"skipped": why}
    poll = float(get_settings().POLL_INTERVAL)
    out: dict[str, Any] = {
        "tasks": m.tasks,
        "concurrency": m.concurrency,
        "interval": poll,
        "peer": f"{peer.NAME} {peer.version()}",
    }
    for side in ("ours", "theirs"):
        runs = sorted(
            (throughput(m, side, poll) for _ in range(m.repeat)),
            key=lambda run: run["tasks_per_second"],
        )
        out[side] = {"throughput": {**runs[len(runs) // 2], "tasks_per_second_runs": [
            run["tasks_per_second"] for run in runs]}}  # fmt: skip
    for side in ("ours", "theirs"):
        out[side]["latency"] = latency(m, side, poll)
    ours, theirs = (out[s]["throughput"]["tasks_per_second"] for s in ("ours", "theirs"))
    out["ratio"] = ours / theirs
    log(m.backend, f"django-tasks: ours / db_worker = {out['ratio']:.2f}x tasks/s")
    return out


def _task(side: str) -> Any:
    from benchmarks.bench_tasks import ours

    return ours if side == "ours" else peer.task()


def _clear(side: str) -> None:
    if side == "ours":
        history.delete_workflow_tasks(WORKFLOW)
    else:
        peer.clear()


def _by_status(side: str) -> dict[str, int]:
    if side == "theirs":
        return peer.by_status()
    from django.db.models import Count

    from salvador_django.models import Task

    rows = Task.objects.filter(workflow=WORKFLOW).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def enqueue(task: Any, count: int) -> None:
    """Enqueue ``count`` tasks in batches of one transaction each."""
    from django.db import transaction

    for start in range(0, count, ENQUEUE_BATCH):
        with transaction.atomic():
            for _ in range(min(ENQUEUE_BATCH, count - start)):
                task.enqueue()


def throughput(m: Measurement, side: str, poll: float) -> dict[str, Any]:
    """Enqueue ``m.tasks`` tasks of ``side``, then time one worker through them."""
    _clear(side)
    enqueue(_task(side), m.tasks)
    history.analyze()
    name, timeout = f"tasks-{side}-burst", max(300.0, m.tasks / 5)
    if side == "ours":
        seconds, cpu = m.run_burst(name, timeout, m.concurrency)
    else:
        seconds, cpu = peer.burst(m, name, poll, timeout)
    statuses = _by_status(side)
    done = statuses.get("completed" if side == "ours" else peer.DONE, 0)
    if done != m.tasks:
        m.result["errors"].append(f"{name}: expected {m.tasks} tasks done, found {statuses}")
    out = {
        "seconds": seconds,
        "tasks_per_second": m.tasks / seconds,
        "worker_cpu_ms_per_task": 1000 * cpu / m.tasks,
        "by_status": statuses,
    }
    log(m.backend, f"django-tasks {side}: {m.tasks} tasks in {seconds:.2f}s ({statuses})")
    _clear(side)
    return out


@contextlib.contextmanager
def _worker(m: Measurement, side: str, poll: float) -> Iterator[None]:
    if side == "ours":
        with m.running_worker("tasks-ours-latency"):
            yield
    else:
        with peer.running(m, "tasks-theirs-latency", poll):
            yield


def _wait_result(task: Any, result_id: str, timeout: float = 30.0) -> float:
    """Poll ``get_result()`` every millisecond until the task succeeded; its result."""
    deadline = time.monotonic() + timeout
    while True:
        result = task.get_result(result_id)
        if result.status.name == "SUCCESSFUL":
            return float(result.return_value)
        if result.status.name == "FAILED" or time.monotonic() > deadline:
            raise RuntimeError(f"django-tasks: task {result_id} {result.status.name}")
        time.sleep(0.001)


def latency(m: Measurement, side: str, poll: float) -> dict[str, Any]:
    """Enqueue -> start (and -> done seen) of tasks enqueued one at a time to an idle worker."""
    from django.db import transaction

    task = _task(side)
    rng = random.Random(0)
    starts: list[float] = []
    seen: list[float] = []
    _clear(side)
    one: Callable[[], Any] = task.enqueue
    with _worker(m, side, poll):
        for _ in range(WARMUP):  # the worker is up, connected and idle
            _wait_result(task, one().id, timeout=60)
        if side == "ours":
            m._wait_listening()
        time.sleep(0.5)
        for _ in range(m.samples):
            time.sleep(rng.uniform(0, poll))  # not in step with the worker's polling
            enqueued = time.time()
            with transaction.atomic():
                result_id = one().id
            began = _wait_result(task, result_id)
            seen.append(time.time() - enqueued)
            starts.append(began - enqueued)
    _clear(side)
    out = {"start_ms": summary_ms(starts), "seen_ms": summary_ms(seen)}
    log(
        m.backend,
        f"django-tasks {side}: enqueue -> start p50 {out['start_ms']['p50']:.1f} ms, "
        f"p95 {out['start_ms']['p95']:.1f} ms (median seen {statistics.median(seen) * 1000:.1f})",
    )
    return out
