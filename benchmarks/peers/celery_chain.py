"""Peer benchmark: a Celery chain of three no-op tasks, Redis broker and result backend.

Usage (from the repository root)::

    .venv/bin/python benchmarks/peers/celery_chain.py [--tasks 2000] [--concurrency 4]
        [--latency-samples 200] [--pool prefork|threads] [--skip-latency]
        [--skip-throughput] [--json PATH]

The workflow is ``chain(step1.s(n), step2.s(), step3.s())``: step one returns its
``time.time()``, the other two pass it on. Broker and result backend are one dedicated
Redis database (``SALVADOR_BENCH_REDIS_URL`` with database
``SALVADOR_BENCH_CELERY_REDIS_DB``, default 13), emptied with FLUSHDB before and after.
The worker is ``python -m celery -A benchmarks.peers.celery_chain worker -P POOL -c C``
in a subprocess, at Celery's defaults (acks on receipt, prefetch multiplier 4, JSON)
but without gossip, mingle and heartbeat (cluster chatter that only slows down the
start of a lone worker).

- Throughput: N chains are sent up front, then the worker is started and timed until
  all N chains' final results exist (one EXISTS over their result keys every 50 ms).
  It is ready when its ``worker_ready`` signal has stored a key.
- Latency: one chain at a time to an idle worker; ``start_ms`` is submit -> step one's
  ``time.time()`` (the chain's result), ``complete_ms`` is submit -> ``get()`` returning
  (the Redis result backend wakes it by pub/sub).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make ``benchmarks.peers`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import redis
from celery import Celery, chain
from celery.signals import worker_ready

from benchmarks.peers import common

MODULE = "benchmarks.peers.celery_chain"
REDIS_DB = int(os.environ.get("SALVADOR_BENCH_CELERY_REDIS_DB", "13"))
URL = common.redis_url(REDIS_DB)
READY_KEY = "peer-bench:ready"
SUBMIT_TIMEOUT = 60.0

app = Celery("peer-bench", broker=URL, backend=URL)
app.conf.broker_connection_retry_on_startup = True


@app.task(name="peer_bench.step1")
def step1(n: int) -> float:
    """Step one: its start time."""
    return time.time()


@app.task(name="peer_bench.step2")
def step2(started: float) -> float:
    """Step two: a no-op passing step one's start time on."""
    return started


@app.task(name="peer_bench.step3")
def step3(started: float) -> float:
    """Step three: a no-op passing step one's start time on."""
    return started


@worker_ready.connect
def _mark_ready(**kwargs: Any) -> None:
    """In the worker: store when it became ready to consume."""
    client = redis.Redis.from_url(URL)
    try:
        client.set(READY_KEY, time.time())
    finally:
        client.close()


def workflow(n: int) -> Any:
    """The three-step chain of workflow ``n``."""
    return chain(step1.s(n), step2.s(), step3.s())


@functools.cache
def client() -> redis.Redis:
    """The submitter's redis-py client of the benchmark's Redis database."""
    return redis.Redis.from_url(URL, socket_connect_timeout=5)


def worker(pool: str, concurrency: int) -> common.Worker:
    """The Celery worker subprocess (not started)."""
    command = common.python_command(
        "celery",
        *("-A", MODULE, "worker", "-P", pool, "-c", str(concurrency)),
        *("--loglevel", "WARNING", "--without-gossip", "--without-mingle"),
        "--without-heartbeat",
    )
    return common.Worker(f"celery-{pool}", command)


def setup() -> None:
    """Empty the benchmark's Redis database."""
    client().flushdb()


def cleanup() -> None:
    """Empty the benchmark's Redis database again."""
    client().flushdb()
    client().close()


def throughput(args: Any, result: common.Result) -> common.Result:
    """Send N chains, then time one worker until every chain's result exists."""
    client().delete(READY_KEY)
    keys = [app.backend.get_key_for_task(workflow(n).apply_async().id) for n in range(args.tasks)]
    with worker(args.pool, args.concurrency) as w:
        out = common.time_throughput(
            w,
            args.tasks,
            count_done=lambda: int(client().exists(*keys)),
            is_ready=lambda: bool(client().exists(READY_KEY)),
            timeout=args.timeout,
        )
        common.stop_worker(w, result, "throughput")
    client().flushdb()
    return out


def latency(args: Any, result: common.Result) -> common.Result:
    """Chains one at a time to an idle worker."""
    client().delete(READY_KEY)

    def run_one(n: int) -> tuple[float, float]:
        started = workflow(n).apply_async().get(timeout=SUBMIT_TIMEOUT)
        return float(started), time.time()

    with worker(args.pool, args.concurrency) as w:
        w.start()
        common.wait_for(
            lambda: bool(client().exists(READY_KEY)), "the worker", args.timeout, worker=w
        )
        out = common.measure_latency(args.latency_samples, run_one)
        common.stop_worker(w, result, "latency")
    return out


def main() -> int:
    """Measure, print and write the result; the exit code."""
    args = common.parse_args(__doc__.splitlines()[0], pools=("prefork", "threads"))
    result = common.new_result(f"celery-{args.pool}", args, ("celery", "kombu", "redis"))
    result["settings"] = (
        f"broker and result backend Redis {URL} (FLUSHDB before and after); worker "
        f"-P {args.pool} -c {args.concurrency}, --without-gossip --without-mingle "
        "--without-heartbeat, otherwise Celery defaults (acks on receipt, prefetch "
        "multiplier 4, JSON); completion: EXISTS over the chains' result keys every 50 ms; "
        "latency: AsyncResult.get() (Redis pub/sub)"
    )
    return common.run(
        result,
        args,
        setup=setup,
        throughput=lambda: throughput(args, result),
        latency=lambda: latency(args, result),
        cleanup=cleanup,
    )


if __name__ == "__main__":
    sys.exit(main())
