"""Peer benchmark of the fan-out section: a Celery chord of N no-op tasks on Redis.

Usage (from the repository root; ``benchmarks/run.py --sections fan-out`` runs it)::

    .venv/bin/python benchmarks/peers/celery_chord.py [--sizes 1000,10000] [--samples 20]
        [--children 100] [--pool prefork|threads] [--concurrency 2] [--repeat 3]
        [--json PATH]

The chord is ``chord(noop.s(i) for i in range(N))(join.s())``: each header task
returns its ``time.time()`` as it ends; the callback returns its own start and the
latest of those. Broker and result backend are one Redis database (as
``celery_chain.py``: ``SALVADOR_BENCH_REDIS_URL`` with database
``SALVADOR_BENCH_CELERY_REDIS_DB``, default 13, emptied with FLUSHDB before and after),
and the worker is one ``celery worker -P POOL -c C`` subprocess at Celery's defaults,
without gossip, mingle and heartbeat, started once and kept running.

The figures have the names and shape of the fan-out section's own (``fan_out``: the
chord is the fan-out, its callback's start the resume).

- Callback latency: ``--samples`` chords of ``--children`` tasks, one at a time: the
  callback's start minus the last header task's ``date_done`` (when its result was
  stored, just before the chord counted it), and minus its body's end.
- Chord against independent tasks: for each size N, ``--repeat`` times, one chord of
  N, timed from just before ``chord(...)()`` to the callback's start, and N
  ``noop.delay()`` calls, timed from just before the first to the last result's
  ``date_done``; the two alternate which goes first.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make ``benchmarks.peers`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import redis
from celery import Celery, chord
from celery.signals import worker_ready

from benchmarks.peers import common
from benchmarks.servers import summary_ms

MODULE = "benchmarks.peers.celery_chord"
REDIS_DB = int(os.environ.get("SALVADOR_BENCH_CELERY_REDIS_DB", "13"))
URL = common.redis_url(REDIS_DB)
READY_KEY = "peer-chord:ready"
WARMUP_CHORDS = 2
KEYS_PER_CALL = 1000

app = Celery("peer-chord", broker=URL, backend=URL)
app.conf.broker_connection_retry_on_startup = True


@app.task(name="peer_chord.noop")
def noop(i: int) -> float:
    """A header task: nothing but its end time."""
    return time.time()


@app.task(name="peer_chord.join")
def join(ended: list[float]) -> list[float]:
    """The callback: its start time, and the latest end of the header tasks."""
    return [time.time(), max(ended)]


@worker_ready.connect
def _mark_ready(**kwargs: Any) -> None:
    """In the worker: store when it became ready to consume."""
    client = redis.Redis.from_url(URL)
    try:
        client.set(READY_KEY, time.time())
    finally:
        client.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="chord sizes (1000,10000)")
    parser.add_argument("--samples", type=int, default=20, help="latency chords (20)")
    parser.add_argument("--children", type=int, default=100, help="tasks per latency chord")
    parser.add_argument("--pool", choices=("prefork", "threads"), default="prefork")
    parser.add_argument("--concurrency", type=int, default=2, help="worker concurrency (2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each size (3)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per chord")
    parser.add_argument("--json", type=Path, help="write the result to this file")
    args = parser.parse_args()
    args.sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    if min([args.children, args.concurrency, args.repeat, *args.sizes]) < 1 or args.samples < 0:
        parser.error("sizes, --children, --concurrency and --repeat must be at least 1")
    return args


@functools.cache
def client() -> redis.Redis:
    """The submitter's redis-py client of the benchmark's Redis database."""
    return redis.Redis.from_url(URL, socket_connect_timeout=5)


def _metas(ids: list[str]) -> list[dict[str, Any]]:
    """The stored results of ``ids`` (every one must exist)."""
    keys = [app.backend.get_key_for_task(task_id) for task_id in ids]
    metas: list[dict[str, Any]] = []
    for i in range(0, len(keys), KEYS_PER_CALL):
        for value in client().mget(keys[i : i + KEYS_PER_CALL]):
            if value is None:
                raise common.BenchError("a task's result is missing")
            metas.append(json.loads(value))
    if any(meta["status"] != "SUCCESS" for meta in metas):
        raise common.BenchError("a task did not succeed")
    return metas


def _last_done(ids: list[str]) -> float:
    """The latest ``date_done`` of ``ids``' results, as epoch seconds."""
    return max(datetime.fromisoformat(meta["date_done"]).timestamp() for meta in _metas(ids))


def _forget(results: list[Any], ids: list[str]) -> None:
    """Stop listening for ``results`` (untimed) and delete the results of ``ids``."""
    for result in results:
        app.backend.remove_pending_result(result)  # and unsubscribe from its channel
    keys = [app.backend.get_key_for_task(task_id) for task_id in ids]
    for i in range(0, len(keys), KEYS_PER_CALL):
        client().delete(*keys[i : i + KEYS_PER_CALL])


def run_chord(n: int, timeout: float) -> dict[str, float]:
    """One chord of ``n``: seconds to the callback's start, and its latencies."""
    began = time.time()
    result = chord(noop.s(i) for i in range(n))(join.s())
    published = time.time()
    # Following the parents would read every header task's result at each interval.
    started, last_end = result.get(timeout=timeout, follow_parents=False)
    headers = result.parent.results
    ids = [child.id for child in headers]
    last_done = _last_done(ids)
    _forget(headers, [*ids, result.id])
    return {
        "seconds": started - began,
        "publish_seconds": published - began,
        "callback": started - last_done,
        "callback_after_step": started - last_end,
    }


def run_independent(n: int, timeout: float, worker: common.Worker) -> dict[str, float]:
    """``n`` independent no-op tasks: seconds to the last result's ``date_done``."""
    began = time.time()
    results = [noop.delay(i) for i in range(n)]
    published = time.time()
    ids = [result.id for result in results]
    keys = [app.backend.get_key_for_task(task_id) for task_id in ids]

    def done() -> bool:
        found = 0
        for i in range(0, len(keys), KEYS_PER_CALL):
            found += int(client().exists(*keys[i : i + KEYS_PER_CALL]))
        return found == n

    common.wait_for(done, f"{n} independent tasks", timeout, worker=worker)
    last = _last_done(ids)
    _forget(results, ids)
    return {"seconds": last - began, "publish_seconds": published - began}


def against_independent(args: argparse.Namespace, n: int, worker: common.Worker) -> dict[str, Any]:
    """A chord of ``n`` against ``n`` independent tasks, ``repeat`` times each, alternating."""
    chords: list[dict[str, float]] = []
    alone: list[dict[str, float]] = []
    for run in range(args.repeat):
        for first in (True, False) if run % 2 == 0 else (False, True):
            if first:
                alone.append(run_independent(n, args.timeout, worker))
            else:
                chords.append(run_chord(n, args.timeout))
    chord_seconds = statistics.median(c["seconds"] for c in chords)
    independent = statistics.median(a["seconds"] for a in alone)
    common.log(f"chord of {n}: {chord_seconds:.2f}s, {n} independent tasks {independent:.2f}s")
    return {
        "children": n,
        "fan_out_seconds": chord_seconds,
        "fan_out_seconds_runs": [c["seconds"] for c in chords],
        "chord_publish_seconds_runs": [c["publish_seconds"] for c in chords],
        "independent_seconds": independent,
        "independent_seconds_runs": [a["seconds"] for a in alone],
        "ratio": chord_seconds / independent,
        "fan_out_ms_per_child": 1000 * chord_seconds / n,
        "independent_ms_per_task": 1000 * independent / n,
        "resume_ms_runs": [1000 * c["callback"] for c in chords],
    }


def callback_latency(args: argparse.Namespace) -> dict[str, Any]:
    """``samples`` chords of ``children`` tasks, one at a time."""
    runs = [run_chord(args.children, args.timeout) for _ in range(args.samples)]
    callback = summary_ms([r["callback"] for r in runs])
    common.log(f"callback after the last header task: p50 {callback['p50']:.1f} ms")
    return {
        "children": args.children,
        "resume_ms": callback,
        "resume_samples_ms": [1000 * r["callback"] for r in runs],
        "resume_after_step_ms": summary_ms([r["callback_after_step"] for r in runs]),
        "fan_out_ms": summary_ms([r["seconds"] for r in runs]),
    }


def measure(args: argparse.Namespace, result: common.Result) -> None:
    """Start the worker, then the latency chords and the sizes; into ``result``."""
    client().flushdb()
    command = common.python_command(
        "celery",
        *("-A", MODULE, "worker", "-P", args.pool, "-c", str(args.concurrency)),
        *("--loglevel", "WARNING", "--without-gossip", "--without-mingle"),
        "--without-heartbeat",
    )
    with common.Worker(f"celery-chord-{args.pool}", command) as worker:
        worker.start()
        common.wait_for(
            lambda: bool(client().exists(READY_KEY)), "the worker", args.timeout, worker=worker
        )
        for _ in range(WARMUP_CHORDS):
            run_chord(10, args.timeout)
        if args.samples:
            result["fan_out"]["resume"] = callback_latency(args)
        sizes = {str(n): against_independent(args, n, worker) for n in args.sizes}
        result["fan_out"]["sizes"] = sizes
        common.stop_worker(worker, result, "chord")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """Measure, write the result; the exit code. SIGTERM stops the worker, as Ctrl-C."""
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse_args()
    result: common.Result = {
        "peer": f"celery-chord-{args.pool}",
        "versions": common.versions("celery", "kombu", "redis"),
        "settings": (
            f"broker and result backend Redis {URL} (FLUSHDB before and after); one worker "
            f"-P {args.pool} -c {args.concurrency}, --without-gossip --without-mingle "
            "--without-heartbeat, otherwise Celery defaults (acks on receipt, prefetch "
            "multiplier 4, JSON)"
        ),
        "pool": args.pool,
        "concurrency": args.concurrency,
        "fan_out": {"latency_children": args.children},
        "errors": [],
    }
    try:
        with common.recording_errors(result, "chord"):
            measure(args, result)
    except KeyboardInterrupt:
        result["errors"].append("interrupted")
    finally:
        with common.recording_errors(result, "cleanup"):
            client().flushdb()
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    for error in result["errors"]:
        print(f"error: {error.splitlines()[0]}", flush=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
