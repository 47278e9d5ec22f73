"""Peer benchmark: a DBOS workflow of three no-op steps, run from a DBOS queue.

Usage (from the repository root)::

    .venv/bin/python benchmarks/peers/dbos_queue.py [--tasks 2000] [--concurrency 4]
        [--latency-samples 200] [--skip-latency] [--skip-throughput] [--json PATH]

The workflow is a ``@DBOS.workflow`` calling three ``@DBOS.step`` functions (step one
returns its ``time.time()``, which the workflow returns). Its system database is its
own PostgreSQL database (``SALVADOR_BENCH_DBOS_DB``, default ``salvador_bench_dbos``),
dropped and recreated at the start and dropped at the end. Processes, all running this
file:

- ``setup`` (a subprocess): launches DBOS once to create the system database's schema
  and registers the queue: ``worker_concurrency=C`` (the limit of one process) and
  ``polling_interval_sec=0.01``.
- ``worker`` (a subprocess): launches DBOS, which dequeues from the queue, until SIGTERM.
- the submitter (this process) enqueues with a ``DBOSClient``, as an application
  outside the worker would.

A worker polls its queue every ``polling_interval_sec`` and then claims at most
``worker_concurrency`` minus its running workflows, so its throughput is bounded by
C / 0.01 s workflows/s.

- Throughput: N workflows are enqueued up front (no worker is listening yet), the
  database is analyzed (``common.analyze``), then the worker is started and timed
  until N workflows are ``SUCCESS`` in ``dbos.workflow_status`` (counted every 50 ms).
  It is ready when DBOS has launched.
- Latency: one workflow at a time to an idle worker; ``start_ms`` is enqueue -> step
  one's ``time.time()`` (the workflow's result), ``complete_ms`` is enqueue ->
  ``handle.get_result(polling_interval_sec=0.001)`` returning.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make ``benchmarks.peers`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dbos import DBOS, DBOSClient, DBOSConfig

from benchmarks import servers
from benchmarks.peers import common

MODULE = "benchmarks.peers.dbos_queue"
DB = os.environ.get("SALVADOR_BENCH_DBOS_DB", "salvador_bench_dbos")
APP = "salvador-peer-bench"
QUEUE = "bench"
WORKFLOW = "peer_bench_workflow"
POLLING_INTERVAL = 0.01
READY = "peer-bench worker ready"
SETUP_TIMEOUT = 120.0
RESULT_TIMEOUT = 60.0


@DBOS.step(name="peer_bench_step1")
def step1() -> float:
    """Step one: its start time."""
    return time.time()


@DBOS.step(name="peer_bench_step2")
def step2() -> None:
    """Step two: a no-op."""


@DBOS.step(name="peer_bench_step3")
def step3() -> None:
    """Step three: a no-op."""


@DBOS.workflow(name=WORKFLOW)
def workflow(n: int) -> float:
    """Three no-op steps; the start time of the first."""
    started = step1()
    step2()
    step3()
    return started


def config(executor_id: str) -> DBOSConfig:
    """The DBOS configuration of the setup and worker processes."""
    return {
        "name": APP,
        "system_database_url": common.pg_url(DB),
        "application_version": "peer-bench",
        "executor_id": executor_id,
        "log_level": "WARNING",
    }


# --------------------------------------------------------------------------- subprocesses


def setup_process(concurrency: int) -> int:
    """Create the system database's schema and register the queue."""
    DBOS(config=config("peer-bench-setup"))
    DBOS.listen_queues([])
    DBOS.launch()
    try:
        DBOS.register_queue(
            QUEUE,
            worker_concurrency=concurrency,
            polling_interval_sec=POLLING_INTERVAL,
            on_conflict="always_update",
        )
    finally:
        DBOS.destroy()
    return 0


def worker_process() -> int:
    """Run DBOS, dequeuing from the queue, until SIGTERM or SIGINT."""
    stop = threading.Event()
    common.run_worker_until_signalled(stop.set)
    DBOS(config=config("peer-bench-worker"))
    DBOS.listen_queues([QUEUE])
    DBOS.launch()
    print(READY, flush=True)
    stop.wait()
    DBOS.destroy(workflow_completion_timeout_sec=10)
    return 0


# --------------------------------------------------------------------------- submitter


@functools.cache
def client() -> DBOSClient:
    """The submitter's DBOS client."""
    return DBOSClient(system_database_url=common.pg_url(DB), application_name=APP)


@functools.cache
def stat_conn() -> Any:
    """The submitter's psycopg connection to the system database, for counting."""
    return servers.pg_connect(DB)


def enqueue(n: int) -> Any:
    """Enqueue workflow ``n``; its handle."""
    return client().enqueue({"queue_name": QUEUE, "workflow_name": WORKFLOW}, n)


def count_done() -> int:
    """How many workflows succeeded (raises if any failed)."""
    done, failed = (
        stat_conn()
        .execute(
            "SELECT count(*) FILTER (WHERE status = 'SUCCESS'),"
            " count(*) FILTER (WHERE status NOT IN ('SUCCESS', 'ENQUEUED', 'PENDING', 'DELAYED'))"
            " FROM dbos.workflow_status WHERE name = %s",
            (WORKFLOW,),
        )
        .fetchone()
    )
    if failed:
        raise common.BenchError(f"{failed} workflows ended neither SUCCESS nor PENDING")
    return int(done)


def worker() -> common.Worker:
    """The worker subprocess (not started)."""
    return common.Worker("dbos", common.python_command(MODULE, "worker"))


def setup(concurrency: int) -> None:
    """A fresh database, its schema and the queue."""
    servers.recreate_database(DB)
    with common.Worker("dbos-setup", common.python_command(MODULE, "setup", str(concurrency))) as w:
        w.start()
        assert w.proc is not None
        code = w.proc.wait(timeout=SETUP_TIMEOUT)
        if code != 0:
            raise common.BenchError(f"setup exited {code}:\n{w.output()}")


def cleanup() -> None:
    """Close the submitter's connections; drop the database."""
    if client.cache_info().currsize:
        client().destroy()
    if stat_conn.cache_info().currsize:
        stat_conn().close()
    servers.drop_database(DB)


def throughput(args: argparse.Namespace, result: common.Result) -> common.Result:
    """Enqueue N workflows, then time one worker until all succeeded."""
    for n in range(args.tasks):
        enqueue(n)
    result["settings"] += "; " + common.analyze(stat_conn())
    with worker() as w:
        out = common.time_throughput(
            w,
            args.tasks,
            count_done=count_done,
            is_ready=lambda: READY in w.output(),
            timeout=args.timeout,
        )
        common.stop_worker(w, result, "throughput")
    return out


def latency(args: argparse.Namespace, result: common.Result) -> common.Result:
    """Workflows one at a time to an idle worker."""

    def run_one(n: int) -> tuple[float, float]:
        started = enqueue(n).get_result(polling_interval_sec=common.LATENCY_POLL_SECONDS)
        return float(started), time.time()

    with worker() as w:
        w.start()
        common.wait_for(lambda: READY in w.output(), "the worker", args.timeout, worker=w)
        out = common.measure_latency(args.latency_samples, run_one)
        common.stop_worker(w, result, "latency")
    return out


def main() -> int:
    """Measure, print and write the result; the exit code."""
    args = common.parse_args(__doc__.splitlines()[0])
    result = common.new_result("dbos", args, ("dbos", "sqlalchemy", "psycopg"))
    result["settings"] = (
        f"PostgreSQL system database {DB} (fresh); queue worker_concurrency="
        f"{args.concurrency}, polling_interval_sec={POLLING_INTERVAL}, LISTEN/NOTIFY on "
        "(DBOS default); enqueued with DBOSClient; one worker process. Throughput is "
        f"bounded by worker_concurrency / polling_interval_sec = "
        f"{args.concurrency / POLLING_INTERVAL:.0f} workflows/s (at most C claimed per "
        "poll); completion: count of SUCCESS rows every 50 ms; latency: "
        "get_result(polling_interval_sec=0.001)"
    )
    return common.run(
        result,
        args,
        setup=lambda: setup(args.concurrency),
        throughput=lambda: throughput(args, result),
        latency=lambda: latency(args, result),
        cleanup=cleanup,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["setup"]:
        sys.exit(setup_process(int(sys.argv[2])))
    if sys.argv[1:2] == ["worker"]:
        sys.exit(worker_process())
    sys.exit(main())
