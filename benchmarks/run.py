"""Benchmark salvador-django against a raw-commit baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py [--backends sqlite,postgres,postgres+redis]
        [--tasks 2000]
        [--concurrency 4] [--latency-samples 200] [--quick] [--json PATH]

This is a benchmark, not a test: it prints figures and ratios, and exits non-zero only
when a run went wrong (a worker failed, tasks were left unfinished).

Processes. This script (the orchestrator) runs each backend in a fresh process of
itself (``--measure BACKEND``), because Django settings select one database per
process (``benchmarks.settings``, ``SALVADOR_BENCH_DB``). Backends: ``sqlite`` and
``postgres`` use the database queue; ``postgres+redis`` stores tasks in the same
PostgreSQL database and queues them in Redis (``SALVADOR["QUEUE"] = "redis"``, local
Redis, a fresh ``KEY_PREFIX`` per run whose keys are deleted afterwards with SCAN +
DEL). A backend whose server is unreachable is skipped. That measuring process is
"the parent" of everything below: it creates a fresh database, migrates it with a
``python -m django migrate`` subprocess, measures the raw baseline, submits tasks
with ``submit()`` and starts ``python -m django runworkflows`` worker subprocesses.

Per backend it measures:

1. Raw baseline: single-row ``UPDATE`` commits/s on the same database through the
   raw driver (``sqlite3`` / ``psycopg``, no Django), autocommit, with 1 connection
   and with ``--concurrency`` connections (one thread each, each updating its own row).
   For ``postgres+redis`` also LPUSH+BRPOP pairs/s on Redis from one redis-py client.
2. Throughput: N ``bench`` tasks (3 no-op steps) are submitted up front (untimed),
   then ONE ``runworkflows --burst --concurrency C`` subprocess is timed until it
   exits. Its startup (an empty ``--burst`` run, median of 3) is reported and also
   subtracted in separately labelled figures. On PostgreSQL, commits are counted
   from ``pg_stat_database.xact_commit`` of the bench database (every transaction the
   worker commits, including read-only ones, polling claims and connection setup).
3. Latency: a long-running ``runworkflows --concurrency C`` subprocess; once idle,
   tasks are submitted one at a time (own transaction) and the task row is polled
   every 1 ms. "start" is submit -> step one's ``time.time()`` (saved in
   ``task.state["t1"]``); "complete" is submit -> the poll that saw ``completed``
   (and, separately, submit -> the task's ``finished_at``, the database's clock).
   The worker is then stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_DB = "salvador_bench"
WORKFLOW = "bench"
STEPS = 3
SUBMIT_BATCH = 500
RAW_SECONDS = 2.0
STARTUP_RUNS = 3
WARMUP_TASKS = 5
IDLE_SECONDS = 2.0
BACKENDS = ("sqlite", "postgres", "postgres+redis")
PG_BACKENDS = ("postgres", "postgres+redis")
REDIS_BACKENDS = ("postgres+redis",)

Result = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def log(backend: str, message: str) -> None:
    """Print a progress line for ``backend``."""
    print(f"[{backend}] {message}", flush=True)


def pg_params() -> dict[str, Any]:
    """Connection parameters of the PostgreSQL server (same env vars as the settings)."""
    return {
        "host": os.environ.get("SALVADOR_BENCH_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("SALVADOR_BENCH_PG_PORT", "5432")),
        "user": os.environ.get("SALVADOR_BENCH_PG_USER", "postgres"),
    }


def pg_connect(dbname: str) -> Any:
    """A raw autocommit psycopg connection to ``dbname``."""
    import psycopg

    return psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=3, **pg_params())


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be benchmarked, or None when it can."""
    try:
        with pg_connect("postgres") as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return None


def redis_url() -> str:
    """The Redis server of ``postgres+redis`` (same env var as the settings)."""
    return os.environ.get("SALVADOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_connect() -> Any:
    """A raw redis-py client of the Redis server."""
    import redis

    return redis.Redis.from_url(redis_url(), socket_connect_timeout=3)


def redis_unreachable() -> str | None:
    """Why Redis cannot be benchmarked, or None when it can."""
    try:
        client = redis_connect()
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return None


def redis_delete_prefix(prefix: str) -> int:
    """Delete every Redis key under ``prefix`` (SCAN + DEL); returns how many."""
    pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
    client = redis_connect()
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return int(deleted)


def unreachable(backend: str) -> str | None:
    """Why ``backend`` cannot be benchmarked (a server is unreachable), or None."""
    if backend in PG_BACKENDS:
        why = postgres_unreachable()
        if why:
            return f"PostgreSQL is unreachable ({why})"
    if backend in REDIS_BACKENDS:
        why = redis_unreachable()
        if why:
            return f"Redis is unreachable at {redis_url()} ({why})"
    return None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of latencies given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "n": len(ms),
    }


def bench_env(backend: str, workdir: Path) -> dict[str, str]:
    """The environment of every process that loads ``benchmarks.settings``."""
    pythonpath = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": str(REPO) + (os.pathsep + pythonpath if pythonpath else ""),
        "SALVADOR_BENCH_DB": backend,
        "SALVADOR_BENCH_SQLITE": str(workdir / "bench.sqlite3"),
    }


# --------------------------------------------------------------------------- measuring


class Measurement:
    """Everything measured for one backend, in the process whose Django uses it."""

    def __init__(self, backend: str, workdir: Path, args: argparse.Namespace) -> None:
        self.backend = backend
        self.workdir = workdir
        self.tasks: int = args.tasks
        self.concurrency: int = args.concurrency
        self.samples: int = args.latency_samples
        self.env = bench_env(backend, workdir)
        self.sqlite_path = workdir / "bench.sqlite3"
        self.postgres = backend in PG_BACKENDS
        self.redis = backend in REDIS_BACKENDS
        self.redis_prefix = os.environ.get("SALVADOR_BENCH_REDIS_PREFIX", "salvador-bench:")
        self.stat_conn: Any = None
        self.result: dict[str, Any] = {"backend": backend, "errors": []}
        self._logs = 0

    # -- setup

    def prepare_database(self) -> None:
        """Create a fresh, empty database and migrate it in a subprocess."""
        if self.postgres:
            with pg_connect("postgres") as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {PG_DB}")
            self.stat_conn = pg_connect("postgres")  # reads stats without touching PG_DB
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
            env=self.env,
            cwd=REPO,
            check=True,
        )
        self.result["migrate_seconds"] = time.perf_counter() - began

    def server_facts(self) -> dict[str, str]:
        """Version and durability settings of the database server."""
        from django.db import connection

        with connection.cursor() as cursor:
            if self.postgres:
                facts = {}
                for name in ("server_version", "synchronous_commit", "fsync"):
                    cursor.execute(f"SHOW {name}")
                    facts[name] = cursor.fetchone()[0]
                if self.redis:
                    client = redis_connect()
                    info = client.info("server") | client.info("persistence")
                    client.close()
                    facts["redis_version"] = str(info["redis_version"])
                    facts["redis appendonly"] = "yes" if info.get("aof_enabled") else "no"
                    facts["key prefix"] = self.redis_prefix
                return facts
            cursor.execute("SELECT sqlite_version()")
            version = cursor.fetchone()[0]
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0], "?")
        return {"sqlite_version": version, "journal_mode": journal, "synchronous": sync}

    # -- 1. raw baseline

    def _raw_connect(self) -> Any:
        if self.postgres:
            return pg_connect(PG_DB)
        conn = sqlite3.connect(
            self.sqlite_path, timeout=20, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def raw_commits_per_second(self, threads: int) -> float:
        """Single-row UPDATE commits/s, autocommit, ``threads`` connections (one row each)."""
        marker = "%s" if self.postgres else "?"
        setup = self._raw_connect()
        setup.execute("CREATE TABLE IF NOT EXISTS bench_raw (id integer PRIMARY KEY, n bigint)")
        for i in range(threads):
            setup.execute(f"DELETE FROM bench_raw WHERE id = {marker}", (i,))
            setup.execute(f"INSERT INTO bench_raw (id, n) VALUES ({marker}, 0)", (i,))
        setup.close()
        sql = f"UPDATE bench_raw SET n = n + 1 WHERE id = {marker}"
        counts = [0] * threads
        stop = threading.Event()
        ready = threading.Barrier(threads + 1)

        def work(i: int) -> None:
            conn = self._raw_connect()
            try:
                ready.wait()
                while not stop.is_set():
                    conn.execute(sql, (i,))
                    counts[i] += 1
            finally:
                conn.close()

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        ready.wait()
        began = time.perf_counter()
        time.sleep(RAW_SECONDS)
        stop.set()
        for worker in workers:
            worker.join()
        return sum(counts) / (time.perf_counter() - began)

    def raw_redis_pairs_per_second(self) -> float:
        """LPUSH + BRPOP round-trip pairs/s on one list, from one redis-py client."""
        key = f"{self.redis_prefix}bench-raw"
        client = redis_connect()
        try:
            client.delete(key)
            pairs = 0
            began = time.perf_counter()
            deadline = began + RAW_SECONDS
            while time.perf_counter() < deadline:
                client.lpush(key, b"1")
                if client.brpop([key], timeout=1) is None:
                    raise RuntimeError("raw Redis baseline: BRPOP found nothing after an LPUSH")
                pairs += 1
            elapsed = time.perf_counter() - began
            client.delete(key)
        finally:
            client.close()
        return pairs / elapsed

    # -- worker subprocesses

    def _worker_command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "django", "runworkflows", *extra]

    def _log_file(self, name: str) -> Path:
        self._logs += 1
        return self.workdir / f"{self._logs:02d}-{name}.log"

    def run_burst(self, name: str, timeout: float) -> tuple[float, float]:
        """Run ``runworkflows --burst --concurrency C`` to its exit.

        Returns its wall time and its CPU time (user + system), in seconds.
        """
        from django.db import connections

        connections.close_all()  # nothing of ours touches the database meanwhile
        path = self._log_file(name)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        with path.open("w") as output:
            began = time.perf_counter()
            proc = subprocess.Popen(
                self._worker_command("--burst", "--concurrency", str(self.concurrency)),
                env=self.env,
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{name}: worker still running after {timeout:.0f}s") from None
            elapsed = time.perf_counter() - began
        if code != 0:
            raise RuntimeError(f"{name}: worker exited {code}:\n{path.read_text()[-3000:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        return elapsed, cpu

    def commits(self) -> int | None:
        """``xact_commit`` of the bench database once the counter has settled (PostgreSQL)."""
        if self.stat_conn is None:
            return None
        from django.db import connections

        connections.close_all()  # our own backend exits and flushes its counters
        last = None
        deadline = time.monotonic() + 10
        while True:
            time.sleep(0.4)  # backends flush their counters at exit / at most once a second
            self.stat_conn.execute("SELECT pg_stat_clear_snapshot()")
            value = self.stat_conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (PG_DB,)
            ).fetchone()[0]
            if value == last or time.monotonic() > deadline:
                return int(value)
            last = value

    # -- 2. throughput

    def measure_startup(self) -> None:
        """Median wall time (and commits, PostgreSQL) of an empty ``--burst`` run."""
        seconds, commits = [], []
        for run in range(STARTUP_RUNS):
            before = self.commits()
            seconds.append(self.run_burst(f"empty-burst-{run}", timeout=120)[0])
            after = self.commits()
            if before is not None and after is not None:
                commits.append(after - before)
        self.result["startup_seconds"] = statistics.median(seconds)
        self.result["startup_seconds_all"] = seconds
        self.result["empty_burst_commits"] = statistics.median(commits) if commits else None
        log(
            self.backend,
            f"empty --burst run: {statistics.median(seconds):.3f}s (median of {STARTUP_RUNS})",
        )

    def submit_tasks(self) -> None:
        """Submit ``tasks`` tasks in batches, each batch in one transaction."""
        from django.db import transaction

        from salvador_django import submit

        began = time.perf_counter()
        for start in range(0, self.tasks, SUBMIT_BATCH):
            with transaction.atomic():
                for i in range(start, min(start + SUBMIT_BATCH, self.tasks)):
                    submit(WORKFLOW, {"i": i})
        elapsed = time.perf_counter() - began
        self.result["submit_per_second"] = self.tasks / elapsed
        log(
            self.backend, f"submitted {self.tasks} tasks in {elapsed:.2f}s (not part of throughput)"
        )

    def measure_throughput(self) -> None:
        """Time one burst worker through the submitted tasks and verify it finished them."""
        from django.db.models import Count, Max, Min

        from salvador_django.models import StepRun, Task

        before = self.commits()
        elapsed, cpu = self.run_burst("throughput", timeout=max(300.0, self.tasks / 5))
        after = self.commits()
        steps = self.tasks * STEPS
        startup = self.result["startup_seconds"]
        net = elapsed - startup
        out: dict[str, Any] = {
            "seconds": elapsed,
            "seconds_minus_startup": net,
            "tasks_per_second": self.tasks / elapsed,
            "steps_per_second": steps / elapsed,
            "tasks_per_second_minus_startup": self.tasks / net if net > 0 else None,
            "steps_per_second_minus_startup": steps / net if net > 0 else None,
            "worker_cpu_seconds": cpu,
            "worker_cpu_ms_per_step": 1000 * cpu / steps,
        }
        by_status = {
            row["status"]: row["n"]
            for row in Task.objects.filter(workflow=WORKFLOW)
            .values("status")
            .annotate(n=Count("id"))
        }
        step_runs = StepRun.objects.filter(task__workflow=WORKFLOW).count()
        span = Task.objects.filter(workflow=WORKFLOW).aggregate(
            first=Min("started_at"), last=Max("finished_at")
        )
        out["by_status"] = by_status
        out["step_runs"] = step_runs
        if span["first"] and span["last"]:
            in_db = (span["last"] - span["first"]).total_seconds()
            out["in_db_span_seconds"] = in_db
            out["steps_per_second_in_db_span"] = steps / in_db if in_db > 0 else None
        if by_status.get("completed", 0) != self.tasks or step_runs != steps:
            self.result["errors"].append(
                f"throughput: expected {self.tasks} completed tasks and {steps} step runs, "
                f"found {by_status} and {step_runs} step runs"
            )
        if before is not None and after is not None:
            total = after - before
            out["commits"] = total
            out["commits_per_step"] = total / steps
            out["commits_minus_claims_per_step"] = (total - self.tasks) / steps
            out["commits_per_second"] = total / elapsed
        self.result["throughput"] = out
        log(
            self.backend,
            f"burst: {self.tasks} tasks in {elapsed:.2f}s, "
            f"{out['steps_per_second']:.0f} steps/s ({by_status})",
        )

    # -- 3. latency

    def _wait_done(self, task_id: Any, timeout: float = 30.0) -> tuple[str, dict[str, Any]]:
        """Poll the task row every 1 ms until it ends; returns its status and state.

        The state gets ``finished_at`` added (epoch seconds, or None).
        """
        from salvador_django.models import Task

        deadline = time.monotonic() + timeout
        while True:
            status, state, finished = (
                Task.objects.filter(pk=task_id).values_list("status", "state", "finished_at").get()
            )
            if status in ("completed", "failed", "cancelled"):
                return status, {**state, "finished_at": finished.timestamp() if finished else None}
            if time.monotonic() > deadline:
                raise RuntimeError(f"task {task_id} still {status} after {timeout}s")
            time.sleep(0.001)

    def _submit_one(self, i: int) -> Any:
        from django.db import transaction

        from salvador_django import submit

        with transaction.atomic():
            return submit(WORKFLOW, {"latency": i}).pk

    def _wait_listening(self) -> None:
        """On PostgreSQL's database queue, wait until the worker's LISTEN connection is up.

        The Redis queue does not LISTEN: its idle workers block on Redis.
        """
        if self.stat_conn is None or self.redis:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            row = self.stat_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE %s",
                (PG_DB, "LISTEN%"),
            ).fetchone()
            if row[0]:
                return
            time.sleep(0.05)
        self.result["errors"].append("latency: the worker never LISTENed for notifications")

    def measure_latency(self) -> None:
        """Submit tasks one at a time to an idle long-running worker; time start and completion."""
        from salvador_django.conf import get_settings

        poll = float(get_settings().POLL_INTERVAL)
        path = self._log_file("latency")
        rng = random.Random(0)
        starts: list[float] = []
        completes: list[float] = []
        finishes: list[float] = []
        with path.open("w") as output:
            proc = subprocess.Popen(
                self._worker_command("--concurrency", str(self.concurrency)),
                env=self.env,
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                for i in range(WARMUP_TASKS):  # the worker is up, connected and idle
                    self._wait_done(self._submit_one(-1 - i), timeout=60)
                self._wait_listening()
                time.sleep(0.5)
                self.result["idle_commits_per_second"] = self._idle_commit_rate()
                for i in range(self.samples):
                    # A random gap, so submissions do not lock step with the polling phase.
                    time.sleep(rng.uniform(0, poll))
                    submitted = time.time()
                    task_id = self._submit_one(i)
                    status, state = self._wait_done(task_id)
                    done = time.time()
                    if status != "completed":
                        raise RuntimeError(f"latency task {task_id} ended {status}")
                    starts.append(state["t1"] - submitted)
                    completes.append(done - submitted)
                    finishes.append(state["finished_at"] - submitted)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
        self.result["latency"] = {
            "start_ms": summary_ms(starts),
            "complete_ms": summary_ms(completes),
            "finished_at_ms": summary_ms(finishes),
            "poll_interval": poll,
            "sigterm_exit_code": code,
        }
        if code != 0:
            self.result["errors"].append(
                f"latency: worker exited {code} on SIGTERM:\n{path.read_text()[-3000:]}"
            )
        s, c = self.result["latency"]["start_ms"], self.result["latency"]["complete_ms"]
        log(
            self.backend,
            f"latency ({len(starts)} samples): start p50 {s['p50']:.1f} ms, "
            f"complete p50 {c['p50']:.1f} ms; SIGTERM exit {code}",
        )

    def _idle_commit_rate(self) -> float | None:
        """Commits/s of the idle long-running worker (PostgreSQL): its polling cost."""
        if self.stat_conn is None:
            return None
        before = self.commits()
        began = time.monotonic()
        time.sleep(IDLE_SECONDS)
        after = self.commits()
        assert before is not None
        assert after is not None
        return (after - before) / (time.monotonic() - began)

    # -- all of it

    def run(self) -> dict[str, Any]:
        """Measure everything for this backend; returns the results."""
        import django

        log(self.backend, "preparing a fresh database")
        self.prepare_database()
        django.setup()
        self.result["server"] = self.server_facts()
        raw1 = self.raw_commits_per_second(1)
        rawc = self.raw_commits_per_second(self.concurrency) if self.concurrency > 1 else raw1
        self.result["raw_commits_per_second"] = {"1": raw1, str(self.concurrency): rawc}
        log(
            self.backend,
            f"raw UPDATE commits/s: {raw1:.0f} (1 conn), {rawc:.0f} ({self.concurrency} conns)",
        )
        if self.redis:
            pairs = self.raw_redis_pairs_per_second()
            self.result["raw_redis_pairs_per_second"] = pairs
            log(self.backend, f"raw Redis LPUSH+BRPOP pairs/s: {pairs:.0f} (1 client)")
        self.measure_startup()
        self.submit_tasks()
        self.measure_throughput()
        self.measure_latency()
        if self.stat_conn is not None:
            self.stat_conn.close()
        return self.result


def measure_main(args: argparse.Namespace) -> int:
    """Entry point of the per-backend measuring process."""
    workdir = Path(args.workdir)
    os.environ.update(bench_env(args.measure, workdir))
    sys.path.insert(0, str(REPO))
    result = Measurement(args.measure, workdir, args).run()
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0


# --------------------------------------------------------------------------- reporting


def machine_facts() -> dict[str, Any]:
    """Facts about this machine and the software measured."""
    import django

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _rows(concurrency: int) -> list[tuple[str, Callable[[Result], str]]]:
    """The report's rows: a label and how to read its cell from one backend's results."""
    c = str(concurrency)

    def tp(key: str, digits: int = 0) -> Callable[[Result], str]:
        return lambda r: _fmt(r.get("throughput", {}).get(key), digits)

    def ratio(key: str) -> Callable[[Result], str]:
        def get(r: Result) -> str:
            steps = r.get("throughput", {}).get(key)
            raw = r.get("raw_commits_per_second", {}).get(c)
            return _fmt(steps / raw, 3) if steps and raw else "-"

        return get

    def lat(kind: str) -> Callable[[Result], str]:
        def get(r: Result) -> str:
            s = r.get("latency", {}).get(kind)
            return f"{s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f}" if s else "-"

        return get

    return [
        ("tasks/s (burst, incl. startup)", tp("tasks_per_second")),
        ("tasks/s (startup subtracted)", tp("tasks_per_second_minus_startup")),
        ("steps/s (burst, incl. startup)", tp("steps_per_second")),
        ("steps/s (startup subtracted)", tp("steps_per_second_minus_startup")),
        ("steps/s (in-DB span: 1st claim..last finish)", tp("steps_per_second_in_db_span")),
        ("burst wall time, s", tp("seconds", 2)),
        ("worker CPU (user+sys) per step, ms", tp("worker_cpu_ms_per_step", 2)),
        ("worker startup (empty --burst), s", lambda r: _fmt(r.get("startup_seconds"), 2)),
        ("raw commits/s, 1 conn", lambda r: _fmt(r.get("raw_commits_per_second", {}).get("1"))),
        (f"raw commits/s, {c} conns", lambda r: _fmt(r.get("raw_commits_per_second", {}).get(c))),
        (
            "raw Redis LPUSH+BRPOP pairs/s, 1 client",
            lambda r: _fmt(r.get("raw_redis_pairs_per_second")),
        ),
        (f"steps/s / raw commits/s ({c} conns)", ratio("steps_per_second")),
        ("  same, startup subtracted", ratio("steps_per_second_minus_startup")),
        ("commits/step, total (PG)", tp("commits_per_step", 3)),
        ("(commits - claims)/step (PG)", tp("commits_minus_claims_per_step", 3)),
        ("worker commits/s during burst (PG)", tp("commits_per_second")),
        ("commits of an empty --burst run (PG)", lambda r: _fmt(r.get("empty_burst_commits"))),
        ("idle worker commits/s (PG)", lambda r: _fmt(r.get("idle_commits_per_second"), 1)),
        ("submit -> step 1 start, p50/p95/p99 ms", lat("start_ms")),
        ("submit -> completed seen, p50/p95/p99 ms", lat("complete_ms")),
        ("submit -> finished_at (DB), p50/p95/p99 ms", lat("finished_at_ms")),
        ("SIGTERM exit code", lambda r: _fmt(r.get("latency", {}).get("sigterm_exit_code"))),
        ("submit() rate, tasks/s (untimed setup)", lambda r: _fmt(r.get("submit_per_second"))),
    ]


def _print_table(measured: dict[str, Result], concurrency: int) -> None:
    """One row per metric, one column per backend."""
    names = list(measured)
    rows = _rows(concurrency)
    width = max(len(label) for label, _ in rows)
    cols = [max(12, *(len(get(measured[n])) for _, get in rows)) for n in names]
    print(" | ".join([" " * width, *(n.rjust(w) for n, w in zip(names, cols, strict=True))]))
    print("-+-".join(["-" * width, *("-" * w for w in cols)]))
    for label, get in rows:
        cells = [get(measured[n]).rjust(w) for n, w in zip(names, cols, strict=True)]
        print(" | ".join([label.ljust(width), *cells]))


def print_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the summary table, the machine facts and what is counted."""
    facts = results["machine"]
    measured = {name: r for name, r in results["backends"].items() if "error" not in r}
    print()
    print(
        f"salvador-django benchmark, {facts['date']}: {args.tasks} tasks x {STEPS} steps, "
        f"concurrency {args.concurrency}, {args.latency_samples} latency samples, "
        f"POLL_INTERVAL {os.environ.get('SALVADOR_BENCH_POLL_INTERVAL', '0.05')} s"
    )
    print(
        f"machine: {facts['cores']} cores, {facts['platform']}; Python {facts['python']}, "
        f"Django {facts['django']}, SQLite {facts['sqlite']}"
    )
    for name, r in measured.items():
        server = ", ".join(f"{k} {v}" for k, v in r.get("server", {}).items())
        if "deleted" in r.get("redis_cleanup", {}):
            server += f" ({r['redis_cleanup']['deleted']} key(s) left, deleted after the run)"
        print(f"{name}: {server}")
    print()
    if measured:
        _print_table(measured, args.concurrency)
    else:
        print("No backend was measured.")
    print()
    print(
        "What is counted:\n"
        "- raw commits/s: single-row UPDATEs in autocommit through the raw driver (sqlite3 /\n"
        "  psycopg, no Django) on the same database, each connection its own thread and row,\n"
        f"  {RAW_SECONDS:.0f} s each. postgres+redis measures the same PostgreSQL again.\n"
        "- raw Redis (postgres+redis only): LPUSH then BRPOP of one list from ONE redis-py\n"
        f"  client, sequentially, for {RAW_SECONDS:.0f} s: pairs/s, i.e. two round trips each.\n"
        "- burst: wall time of ONE `runworkflows --burst` subprocess from spawn to exit, tasks\n"
        "  submitted beforehand. 'startup subtracted' removes the median wall time of an empty\n"
        "  --burst run (interpreter + Django start, checks, threads, final empty claims, exit).\n"
        "  'in-DB span' is first started_at .. last finished_at of the tasks (database clock).\n"
        "- commits (PostgreSQL, postgres+redis too): delta of pg_stat_database.xact_commit for\n"
        "  the bench database across the burst run, read after the counters settle. It counts\n"
        "  EVERY transaction the worker commits, read-only ones included (connection setup,\n"
        "  sweep, empty claims, LISTEN). '(commits - claims)/step' subtracts exactly one claim\n"
        "  per task and nothing else; the design expects 1.0 (one checkpoint per step) and 4/3\n"
        "  total. The empty-run row shows what a worker commits with nothing to do, not\n"
        "  subtracted. postgres+redis idle workers wait on Redis, so they commit nothing.\n"
        "- latency: submit() in its own transaction from the measuring process to an idle\n"
        "  long-running worker; 'step 1 start' is step one's time.time() minus the time taken\n"
        "  just before submit; 'completed seen' is when a 1 ms poll of the row first saw it;\n"
        "  'finished_at' is the task's finished_at (database clock, same machine).\n"
        "  SQLite has no cross-process wake-up, so pickup waits for the poll interval;\n"
        "  postgres uses LISTEN/NOTIFY; postgres+redis idle workers block on a Redis list\n"
        "  (BLPOP) that the push after submit()'s commit rings."
    )
    for name, r in results["backends"].items():
        for error in r.get("errors", []) + ([r["error"]] if "error" in r else []):
            print(f"ERROR [{name}]: {error}")


# --------------------------------------------------------------------------- orchestration


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` lowers the defaults of tasks and samples."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated: sqlite,postgres,postgres+redis (default: all three; a backend "
        "whose server is unreachable is skipped)",
    )
    parser.add_argument("--tasks", type=int, help="tasks in the throughput run (default 2000)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads (default 4)")
    parser.add_argument(
        "--latency-samples", type=int, help="tasks in the latency run (default 200)"
    )
    parser.add_argument("--quick", action="store_true", help="500 tasks, 50 latency samples")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--measure", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tasks is None:
        args.tasks = 500 if args.quick else 2000
    if args.latency_samples is None:
        args.latency_samples = 50 if args.quick else 200
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    if args.tasks < 1 or args.concurrency < 1 or args.latency_samples < 1:
        parser.error("--tasks, --concurrency and --latency-samples must be at least 1")
    args.backends = backends
    return args


def _redis_cleanup(backend: str, prefix: str) -> dict[str, Any]:
    """Delete the run's Redis keys and check that none is left."""
    try:
        deleted = redis_delete_prefix(prefix)
        left = redis_delete_prefix(prefix)  # a second pass finds nothing unless keys raced in
    except Exception as exc:
        message = f"could not delete the Redis keys under {prefix!r}: {exc}"
        log(backend, message)
        return {"prefix": prefix, "error": message}
    log(backend, f"deleted {deleted} Redis key(s) under {prefix!r}")
    result: dict[str, Any] = {"prefix": prefix, "deleted": deleted}
    if left:
        result["error"] = f"{left} Redis key(s) under {prefix!r} appeared after the run"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark for each backend in its own process and print the report."""
    args = parse_args(argv)
    if args.measure:
        return measure_main(args)
    results: dict[str, Any] = {
        "machine": machine_facts(),
        "args": {
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "latency_samples": args.latency_samples,
            "steps_per_task": STEPS,
        },
        "backends": {},
    }
    failed = False
    for backend in args.backends:
        why = unreachable(backend)
        if why:
            print(f"[{backend}] skipped: {why}", flush=True)
            continue
        env = dict(os.environ)
        if backend in REDIS_BACKENDS:
            prefix = f"salvador-bench:{secrets.token_hex(6)}:"
            env["SALVADOR_BENCH_REDIS_PREFIX"] = prefix
        with tempfile.TemporaryDirectory(prefix=f"salvador-bench-{backend}-") as tmp:
            out = Path(tmp) / "result.json"
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                *("--measure", backend, "--workdir", tmp, "--result", str(out)),
                *("--tasks", str(args.tasks), "--concurrency", str(args.concurrency)),
                *("--latency-samples", str(args.latency_samples)),
            ]
            try:
                code = subprocess.run(command, cwd=REPO, env=env).returncode
            finally:
                if backend in REDIS_BACKENDS:
                    cleanup = _redis_cleanup(backend, env["SALVADOR_BENCH_REDIS_PREFIX"])
            if code != 0 or not out.exists():
                results["backends"][backend] = {"error": f"measuring process exited {code}"}
                failed = True
                continue
            result = json.loads(out.read_text())
            if backend in REDIS_BACKENDS:
                result["redis_cleanup"] = cleanup
                if "error" in cleanup:
                    result["errors"].append(cleanup["error"])
            failed = failed or bool(result["errors"])
            results["backends"][backend] = result
    print_report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nresults written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
