"""Peer benchmark: three procrastinate tasks, each deferring the next.

Usage (from the repository root)::

    .venv/bin/python benchmarks/peers/procrastinate_chain.py [--tasks 2000]
        [--concurrency 4] [--latency-samples 200] [--skip-latency] [--skip-throughput]
        [--json PATH]

The workflow is three async no-op tasks (``benchmarks/peers/procrastinate_app.py``):
step one defers step two with its ``time.time()`` in the arguments, step two defers
step three with the same arguments. The ``PsycopgConnector`` uses its own PostgreSQL
database (``SALVADOR_BENCH_PROCRASTINATE_DB``, default ``salvador_bench_procrastinate``),
dropped, recreated and given procrastinate's schema at the start and dropped at the
end. The worker is procrastinate's own CLI in a subprocess, ``python -m procrastinate
--app benchmarks.peers.procrastinate_app.app worker --concurrency C --listen-notify``
(LISTEN/NOTIFY), with its polling fallback ``--fetch-job-polling-interval`` at
procrastinate's default of 5 s (``SALVADOR_BENCH_PROCRASTINATE_POLL`` changes it) and
a connection pool of C + 2 (jobs, the LISTEN connection, the fetch loop); completed
jobs are kept (procrastinate's default).

- Throughput: N step-one jobs are deferred up front (one batch), the database is
  analyzed (``common.analyze``), then the worker is started and timed until N
  step-three jobs are ``succeeded`` (counted every 50 ms). It is ready when it has
  registered itself in ``procrastinate_workers``.
- Latency: the jobs table is emptied; one step-one job at a time to an idle worker,
  then its step-three job is polled every 1 ms; ``start_ms`` is defer -> step one's
  ``time.time()`` (from step three's arguments), ``complete_ms`` is defer -> the poll
  that saw step three ``succeeded``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make ``benchmarks.peers`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import servers
from benchmarks.peers import common
from benchmarks.peers.procrastinate_app import DB, POOL_ENV, STEP3, app, step1

APP_MODULE = "benchmarks.peers.procrastinate_app"
POLL_ENV = "SALVADOR_BENCH_PROCRASTINATE_POLL"
POLL_INTERVAL = float(os.environ.get(POLL_ENV, "5.0"))
RESULT_TIMEOUT = 60.0
OPENED = contextlib.ExitStack()  # the submitter's open app, closed by cleanup()


# --------------------------------------------------------------------------- submitter


@functools.cache
def conn() -> Any:
    """The submitter's psycopg connection, for counting and polling."""
    return servers.pg_connect(DB)


def count_done() -> int:
    """How many step-three jobs succeeded (raises if any job failed)."""
    done, failed = (
        conn()
        .execute(
            "SELECT count(*) FILTER (WHERE task_name = %s AND status = 'succeeded'),"
            " count(*) FILTER (WHERE status IN ('failed', 'aborted'))"
            " FROM procrastinate_jobs",
            (STEP3,),
        )
        .fetchone()
    )
    if failed:
        raise common.BenchError(f"{failed} jobs failed")
    return int(done)


def worker_registered() -> bool:
    """Whether a worker has registered itself."""
    return bool(conn().execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0])


def worker(concurrency: int) -> common.Worker:
    """The worker subprocess (not started)."""
    command = common.python_command(
        "procrastinate",
        *("--app", f"{APP_MODULE}.app", "worker", "--concurrency", str(concurrency)),
        *("--fetch-job-polling-interval", str(POLL_INTERVAL), "--listen-notify"),
    )
    return common.Worker("procrastinate", command, env={POOL_ENV: str(concurrency + 2)})


def setup() -> None:
    """A fresh database with procrastinate's schema; open the app (for deferring)."""
    servers.recreate_database(DB)
    app.open()
    OPENED.callback(app.close)
    app.schema_manager.apply_schema()


def cleanup() -> None:
    """Close the app and the connection; drop the database."""
    OPENED.close()
    if conn.cache_info().currsize:
        conn().close()
    servers.drop_database(DB)


def throughput(args: argparse.Namespace, result: common.Result) -> common.Result:
    """Defer N step-one jobs, then time one worker until N step-three jobs succeeded."""
    step1.batch_defer(*({"n": n} for n in range(args.tasks)))
    result["settings"] += "; " + common.analyze(conn())
    with worker(args.concurrency) as w:
        out = common.time_throughput(
            w, args.tasks, count_done, is_ready=worker_registered, timeout=args.timeout
        )
        common.stop_worker(w, result, "throughput")
    return out


def wait_step3(n: int) -> tuple[float, float]:
    """Poll every 1 ms until workflow ``n``'s step three succeeded; (started, seen)."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while True:
        row = (
            conn()
            .execute(
                "SELECT status, args->>'started' FROM procrastinate_jobs"
                " WHERE task_name = %s AND (args->>'n')::int = %s",
                (STEP3, n),
            )
            .fetchone()
        )
        if row is not None and row[0] == "succeeded":
            return float(row[1]), time.time()
        if row is not None and row[0] in ("failed", "aborted"):
            raise common.BenchError(f"step three of workflow {n} ended {row[0]}")
        if time.monotonic() > deadline:
            raise common.BenchError(f"workflow {n} unfinished after {RESULT_TIMEOUT:.0f} s")
        time.sleep(common.LATENCY_POLL_SECONDS)


def latency(args: argparse.Namespace, result: common.Result) -> common.Result:
    """Step-one jobs one at a time to an idle worker (on an emptied jobs table)."""
    conn().execute("TRUNCATE procrastinate_jobs, procrastinate_workers CASCADE")

    def run_one(n: int) -> tuple[float, float]:
        step1.defer(n=n)
        return wait_step3(n)

    with worker(args.concurrency) as w:
        w.start()
        common.wait_for(worker_registered, "the worker", args.timeout, worker=w)
        out = common.measure_latency(args.latency_samples, run_one)
        common.stop_worker(w, result, "latency")
    return out


def main() -> int:
    """Measure, print and write the result; the exit code."""
    args = common.parse_args(__doc__.splitlines()[0])
    result = common.new_result("procrastinate", args, ("procrastinate", "psycopg"))
    result["settings"] = (
        f"PsycopgConnector on PostgreSQL database {DB} (fresh), async tasks each "
        f"deferring the next; one worker, concurrency={args.concurrency}, "
        f"listen_notify=True, fetch_job_polling_interval={POLL_INTERVAL:g} s (fallback), "
        f"pool {args.concurrency + 2} connections, jobs kept; completion: count of "
        "succeeded step-three jobs every 50 ms; latency: step three's row polled every 1 ms"
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
