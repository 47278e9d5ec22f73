"""The per-backend measuring process of ``benchmarks/run.py`` (``--measure BACKEND``).

Django settings select one database per process (``benchmarks.settings``,
``SALVADOR_BENCH_DB``), so ``run.py`` runs this once per backend, in a fresh process
of itself. It creates a fresh database, migrates it with a ``python -m django
migrate`` subprocess, measures the raw baseline, submits tasks with ``submit()`` and
starts ``python -m django runworkflows`` worker subprocesses; at the end it drops
MariaDB's database (a server others share). ``run.py``'s docstring says what each
figure counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import (
    cpu,
    fanout,
    graphs,
    history,
    observability,
    schedules,
    tasks_section,
    waits,
)
from benchmarks.mariadb_commits import CommitCounter
from benchmarks.servers import (
    MYSQL_BACKENDS,
    MYSQL_DB,
    PG_BACKENDS,
    PG_DB,
    REDIS_BACKENDS,
    REPO,
    MySQLConnection,
    bench_env,
    drop_mysql_database,
    log,
    mysql_params,
    pg_connect,
    pg_params,
    recreate_database,
    recreate_mysql_database,
    redis_connect,
    summary_ms,
)

WORKFLOW = "bench"
STEPS = 3
SUBMIT_BATCH = 500
RAW_SECONDS = 2.0
STARTUP_RUNS = 3
WARMUP_TASKS = 5
IDLE_SECONDS = 2.0
CLAIM_SAMPLES = 200
#: The sections of a run, in the order they run (``--sections`` picks some).
SECTIONS = (
    "throughput", "latency", "sweep", "memory", "waits", "fan-out", "graph", "schedules",
    "django-tasks", "scale", "observability",
)  # fmt: skip


# --------------------------------------------------------------------------- measuring


class Measurement:
    """Everything measured for one backend, in the process whose Django uses it."""

    def __init__(self, backend: str, workdir: Path, args: argparse.Namespace) -> None:
        self.backend = backend
        self.workdir = workdir
        self.tasks: int = args.tasks
        self.concurrency: int = args.concurrency
        self.samples: int = args.latency_samples
        self.sweep: list[int] = getattr(args, "sweep", [])
        self.history_levels: list[int] = getattr(args, "history", [])
        self.memory_tasks: list[int] = getattr(args, "memory", [])
        self.repeat: int = getattr(args, "repeat", 1)
        self.sections: list[str] = getattr(args, "sections", None) or list(SECTIONS)
        self.wait_samples: int = getattr(args, "wait_samples", 0)
        self.waiting_levels: list[int] = getattr(args, "waiting", [])
        self.fan_out_sizes: list[int] = getattr(args, "fan_out", [])
        self.fan_out_samples: int = getattr(args, "fan_out_samples", 0)
        self.fan_out_children: int = getattr(args, "fan_out_children", 100)
        self.graph_tasks: int = getattr(args, "graph_tasks", 0)
        self.graph_samples: int = getattr(args, "graph_samples", 0)
        self.schedule_sizes: list[int] = getattr(args, "schedules", [])
        self.schedule_due: list[int] = getattr(args, "schedule_due", [])
        self.schedule_seconds: float = getattr(args, "schedule_seconds", 0.0)
        self.env = bench_env(backend, workdir)
        self.sqlite_path = workdir / "bench.sqlite3"
        self.postgres = backend in PG_BACKENDS
        self.mariadb = backend in MYSQL_BACKENDS
        self.redis = backend in REDIS_BACKENDS
        self.redis_prefix = os.environ.get("SALVADOR_BENCH_REDIS_PREFIX", "salvador-bench:")
        self.stat_conn: Any = None  # PostgreSQL's
        self.mysql_counter: CommitCounter | None = None
        self.local_postgres = self.postgres and pg_params()["host"] in ("127.0.0.1", "localhost")
        self.local_mariadb = self.mariadb and mysql_params()["host"] in ("127.0.0.1", "localhost")
        self.last_cpu: dict[str, Any] = {}
        self.result: dict[str, Any] = {"backend": backend, "errors": []}
        self._logs = 0

    # -- setup

    def prepare_database(self) -> None:
        """Create a fresh, empty database and migrate it in a subprocess."""
        if self.postgres:
            recreate_database(PG_DB)
            self.stat_conn = pg_connect("postgres")  # reads stats without touching PG_DB
        elif self.mariadb:
            recreate_mysql_database(MYSQL_DB)
            self.mysql_counter = self._start_mysql_counter()
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

    def _start_mysql_counter(self) -> CommitCounter | None:
        """MariaDB's count of committed transactions; None (and why, logged) without it."""
        counter = CommitCounter(MYSQL_DB)
        try:
            counter.start()
        except Exception as exc:
            counter.close()
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            self.result["commits_not_measured"] = why
            log(self.backend, f"commits not measured on MariaDB: {why}")
            return None
        return counter

    def server_facts(self) -> dict[str, str]:
        """Version and durability settings of the database server (and of Redis)."""
        from django.db import connection

        with connection.cursor() as cursor:
            if self.postgres:
                facts = {}
                for name in ("server_version", "synchronous_commit", "fsync"):
                    cursor.execute(f"SHOW {name}")
                    facts[name] = cursor.fetchone()[0]
                return facts | self._redis_facts()
            if self.mariadb:
                return self._mariadb_facts(cursor) | self._redis_facts()
            cursor.execute("SELECT sqlite_version()")
            version = cursor.fetchone()[0]
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0], "?")
        return {"sqlite_version": version, "journal_mode": journal, "synchronous": sync}

    def _redis_facts(self) -> dict[str, str]:
        if not self.redis:
            return {}
        client = redis_connect()
        info = client.info("server") | client.info("persistence")
        client.close()
        return {
            "redis_version": str(info["redis_version"]),
            "redis appendonly": "yes" if info.get("aof_enabled") else "no",
            "key prefix": self.redis_prefix,
        }

    def _mariadb_facts(self, cursor: Any) -> dict[str, str]:
        """MariaDB's version, durability, isolation; how idle workers of its database queue
        wait (they poll: no LISTEN/NOTIFY); what its commit counts count."""
        from salvador_django.conf import get_settings

        cursor.execute("SELECT VERSION()")
        facts = {"version": str(cursor.fetchone()[0])}
        names = (
            "innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin",
            "innodb_buffer_pool_size", "tx_isolation", "transaction_isolation",
        )  # fmt: skip
        marks = ", ".join(["%s"] * len(names))
        cursor.execute(f"SHOW SESSION VARIABLES WHERE Variable_name IN ({marks})", names)
        facts |= {name: str(value) for name, value in cursor.fetchall()}
        if not self.redis:
            poll = float(get_settings().POLL_INTERVAL)
            facts["POLL_INTERVAL"] = f"{poll:g} s (idle workers poll: no LISTEN/NOTIFY)"
        facts["commits counted"] = "InnoDB trx_rw/ro/nl_ro_commits, server-wide"
        return facts

    # -- 1. raw baseline

    def _raw_connect(self) -> Any:
        if self.postgres:
            return pg_connect(PG_DB)
        if self.mariadb:
            return MySQLConnection(MYSQL_DB)
        conn = sqlite3.connect(
            self.sqlite_path, timeout=20, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def raw_commits_per_second(self, threads: int) -> float:
        """Single-row UPDATE commits/s, autocommit, ``threads`` connections (one row each)."""
        marker = "%s" if self.postgres or self.mariadb else "?"
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

    def measure_raw_commits(self) -> None:
        """Raw commits/s with 1 connection and with ``concurrency`` connections."""
        raw1 = self.raw_commits_per_second(1)
        rawc = self.raw_commits_per_second(self.concurrency) if self.concurrency > 1 else raw1
        self.result["raw_commits_per_second"] = {"1": raw1, str(self.concurrency): rawc}
        log(
            self.backend,
            f"raw UPDATE commits/s: {raw1:.0f} (1 conn), {rawc:.0f} ({self.concurrency} conns)",
        )

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

    @contextlib.contextmanager
    def running_worker(
        self, name: str, concurrency: int | None = None, pool: str = "threads"
    ) -> Iterator[subprocess.Popen[bytes]]:
        """A long-running worker for the block; stopped with SIGTERM, which must exit 0.

        ``--concurrency`` is the run's unless given. Its exit code goes to
        ``result["exit_codes"][name]``; any other than 0 is an error.
        """
        path = self._log_file(name)
        concurrency = concurrency or self.concurrency
        with path.open("w") as output:
            proc = subprocess.Popen(
                self._worker_command(
                    "--concurrency",
                    str(concurrency),
                    *(("--pool", pool) if pool != "threads" else ()),
                ),
                env=self.env,
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                yield proc
            finally:
                code = stop_process(proc)
        self.result.setdefault("exit_codes", {})[name] = code
        if code != 0:
            self.result["errors"].append(
                f"{name}: worker exited {code} on SIGTERM:\n{path.read_text()[-3000:]}"
            )

    def _log_file(self, name: str) -> Path:
        self._logs += 1
        return self.workdir / f"{self._logs:02d}-{name}.log"

    def run_burst(
        self,
        name: str,
        timeout: float,
        concurrency: int,
        pool: str = "threads",
        command: list[str] | None = None,
    ) -> tuple[float, float]:
        """Run ``runworkflows --burst --concurrency C --pool POOL`` (or ``command``, a
        peer's worker that exits when it has run everything) to its exit.

        Returns its wall time and its CPU time (user + system), in seconds, and keeps
        the machine's busy share and the server's CPU time in ``last_cpu``.
        """
        from django.db import connections

        connections.close_all()  # nothing of ours touches the database meanwhile
        path = self._log_file(name)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = cpu.snapshot(self.local_postgres, self.local_mariadb)
        with path.open("w") as output:
            began = time.perf_counter()
            proc = subprocess.Popen(
                command
                or self._worker_command(
                    "--burst", "--concurrency", str(concurrency), "--pool", pool
                ),
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
        time.sleep(0.1)  # the server reaps the worker's backends
        cpu_after = cpu.snapshot(self.local_postgres, self.local_mariadb)
        self.last_cpu = (
            cpu_after.since(cpu_before, os.cpu_count() or 1) if cpu_before and cpu_after else {}
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return elapsed, (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)

    @property
    def counts_commits(self) -> bool:
        """Whether :meth:`commits` reads a counter (PostgreSQL, MariaDB)."""
        return self.stat_conn is not None or self.mysql_counter is not None

    def commits(self) -> int | None:
        """``xact_commit`` of the bench database once the counter has settled (PostgreSQL);
        the server's committed InnoDB transactions (MariaDB, ``benchmarks.mariadb_commits``);
        None on SQLite."""
        from django.db import connections

        if self.mysql_counter is not None:
            connections.close_all()  # as on PostgreSQL: nothing of ours runs meanwhile
            value = self.mysql_counter.commits()
            self.result["mysql_other_sessions"] = self.mysql_counter.other_sessions
            return value
        if self.stat_conn is None:
            return None
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
            seconds.append(
                self.run_burst(f"empty-burst-{run}", timeout=120, concurrency=self.concurrency)[0]
            )
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

    def submit_tasks(self, count: int | None = None, workflow: str = WORKFLOW) -> None:
        """Submit ``count`` (default ``tasks``) tasks of ``workflow`` in batches of one
        transaction each."""
        from django.db import transaction

        from salvador_django import submit

        count = self.tasks if count is None else count
        began = time.perf_counter()
        for start in range(0, count, SUBMIT_BATCH):
            with transaction.atomic():
                for i in range(start, min(start + SUBMIT_BATCH, count)):
                    submit(workflow, {"i": i})
        self.result.setdefault("submit_per_second", count / (time.perf_counter() - began))

    def burst(
        self,
        name: str,
        concurrency: int,
        pool: str = "threads",
        *,
        workflow: str = WORKFLOW,
        steps_per_task: int = STEPS,
        count: int | None = None,
    ) -> dict[str, Any]:
        """Submit ``count`` (default ``tasks``) fresh tasks of ``workflow``, time one burst
        worker through them, and verify it.

        Returns the figures; a burst that left tasks unfinished adds to ``errors``.
        """
        from salvador_django.models import Task

        count = self.tasks if count is None else count
        history.delete_workflow_tasks(workflow)
        self.submit_tasks(count, workflow)
        history.analyze()  # planner statistics, as the peers' scripts refresh theirs
        before = self.commits()
        elapsed, worker_cpu = self.run_burst(
            name, timeout=max(300.0, count / 5), concurrency=concurrency, pool=pool
        )
        after = self.commits()
        steps = count * steps_per_task
        out: dict[str, Any] = {
            "workflow": workflow,
            "tasks": count,
            "concurrency": concurrency,
            "pool": pool,
            "seconds": elapsed,
            "tasks_per_second": count / elapsed,
            "steps_per_second": steps / elapsed,
            "worker_cpu_seconds": worker_cpu,
            "worker_cpu_ms_per_step": 1000 * worker_cpu / steps,
            **self.last_cpu,
        }
        for server in ("postgres", "mariadb"):
            if self.last_cpu.get(f"{server}_cpu_seconds") is not None:
                seconds = self.last_cpu[f"{server}_cpu_seconds"]
                out[f"{server}_cpu_ms_per_step"] = 1000 * seconds / steps
        self.check_burst(name, out, Task.objects.filter(workflow=workflow), count, steps)
        if before is not None and after is not None:
            total = after - before
            out["commits"] = total
            out["commits_per_step"] = total / steps
            out["commits_minus_claims_per_step"] = (total - count) / steps
            empty = self.result.get("empty_burst_commits")
            if empty is not None:  # the happy path: less what a worker commits idle
                out["happy_path_commits_per_step"] = (total - count - empty) / steps
            out["commits_per_second"] = total / elapsed
        log(
            self.backend,
            f"{name} ({pool}, concurrency {concurrency}): {count} tasks in "
            f"{elapsed:.2f}s, {out['steps_per_second']:.0f} steps/s ({out['by_status']})",
        )
        return out

    def median_burst(self, name: str, pool: str) -> dict[str, Any]:
        """The burst of median tasks/s among ``repeat`` runs at ``concurrency``.

        A 2-core machine's run-to-run noise is large, so the headline figure is the
        median run; every run's tasks/s is kept beside it.
        """
        runs = [self.burst(name, self.concurrency, pool=pool) for _ in range(self.repeat)]
        runs.sort(key=lambda run: run["tasks_per_second"])
        median = runs[len(runs) // 2]
        median["tasks_per_second_runs"] = [run["tasks_per_second"] for run in runs]
        return median

    def check_burst(
        self,
        name: str,
        out: dict[str, Any],
        tasks: Any,
        count: int | None = None,
        steps: int | None = None,
    ) -> None:
        """Add the outcome of the burst's ``tasks`` (a queryset of ``count`` tasks, default
        ``tasks``, of ``steps`` steps in all, default ``STEPS`` each) to ``out``; flag
        shortfalls.

        Every task must be completed with one step run per step; the span from the first
        claim to the last finish (database clock) gives steps/s without the start-up.
        """
        from django.db.models import Count, Max, Min

        from salvador_django.models import StepRun

        count = self.tasks if count is None else count
        steps = count * STEPS if steps is None else steps
        by_status = {
            row["status"]: row["n"] for row in tasks.values("status").annotate(n=Count("id"))
        }
        step_runs = StepRun.objects.filter(task__in=tasks.values("pk")).count()
        span = tasks.aggregate(first=Min("started_at"), last=Max("finished_at"))
        out["by_status"] = by_status
        out["step_runs"] = step_runs
        if span["first"] and span["last"]:
            in_db = (span["last"] - span["first"]).total_seconds()
            out["in_db_span_seconds"] = in_db
            out["steps_per_second_in_db_span"] = steps / in_db if in_db > 0 else None
        if by_status.get("completed", 0) != count or step_runs != steps:
            self.result["errors"].append(
                f"{name}: expected {count} completed tasks and {steps} step runs, "
                f"found {by_status} and {step_runs} step runs"
            )

    def measure_throughput(self) -> None:
        """Throughput at ``concurrency`` with threads (startup subtracted too) and processes."""
        out = self.median_burst("throughput", "threads")
        net = out["seconds"] - self.result["startup_seconds"]
        out["seconds_minus_startup"] = net
        out["tasks_per_second_minus_startup"] = self.tasks / net if net > 0 else None
        out["steps_per_second_minus_startup"] = self.tasks * STEPS / net if net > 0 else None
        self.result["throughput"] = out
        self.result["throughput_processes"] = self.median_burst("throughput", "processes")

    def measure_sweep(self) -> None:
        """Steps/s of one burst worker (threads) at each concurrency of ``sweep``."""
        self.result["sweep"] = {
            str(c): self.burst("sweep", c)["steps_per_second"] for c in self.sweep
        }

    # -- 3. latency

    def _wait_done(
        self, task_id: Any, timeout: float = 30.0, every: float = 0.001
    ) -> tuple[str, dict[str, Any]]:
        """Poll the task row (every 1 ms) until it ends; returns its status and state.

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
            time.sleep(every)

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
        rng = random.Random(0)
        starts: list[float] = []
        completes: list[float] = []
        finishes: list[float] = []
        with self.running_worker("latency"):
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
        code = self.result["exit_codes"]["latency"]
        self.result["latency"] = {
            "start_ms": summary_ms(starts),
            "start_samples_ms": [1000 * x for x in starts],
            "complete_ms": summary_ms(completes),
            "finished_at_ms": summary_ms(finishes),
            "poll_interval": poll,
            "sigterm_exit_code": code,
        }
        s, c = self.result["latency"]["start_ms"], self.result["latency"]["complete_ms"]
        log(
            self.backend,
            f"latency ({len(starts)} samples): start p50 {s['p50']:.1f} ms, "
            f"complete p50 {c['p50']:.1f} ms; SIGTERM exit {code}",
        )

    def _idle_commit_rate(self) -> float | None:
        """Commits/s of the idle long-running worker (PostgreSQL, MariaDB): its polling cost."""
        if not self.counts_commits:
            return None
        before = self.commits()
        began = time.monotonic()
        time.sleep(IDLE_SECONDS)
        after = self.commits()
        assert before is not None
        assert after is not None
        return (after - before) / (time.monotonic() - began)

    # -- 5. memory

    def measure_memory(self) -> None:
        """RSS of one long-running worker after each count of ``memory_tasks`` tasks."""
        from salvador_django.models import Task

        history.delete_workflow_tasks(WORKFLOW)
        rss: dict[str, float | None] = {}
        with self.running_worker("memory") as proc:
            done = 0
            completed = Task.objects.filter(workflow=WORKFLOW, status="completed")
            for target in sorted(self.memory_tasks):
                self.submit_tasks(target - done)
                deadline = time.monotonic() + max(120.0, target / 20)
                while completed.count() < target:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"memory: the worker did not finish {target} tasks")
                    time.sleep(0.2)
                done = target
                rss[str(target)] = _rss_mib(proc.pid)
                log(self.backend, f"worker RSS after {target} tasks: {rss[str(target)]} MiB")
        self.result["memory_rss_mib"] = rss

    # -- 4. scale

    def measure_scale(self) -> None:
        """Claim latency and burst steps/s with each number of ``history_levels`` rows."""
        history.delete_workflow_tasks(WORKFLOW)
        history.delete_workflow_tasks(history.HISTORY_WORKFLOW)
        levels: dict[str, dict[str, Any]] = {}
        for level in sorted(self.history_levels):
            seeded = history.seed_history(level - history.history_size())
            history.delete_workflow_tasks(WORKFLOW)
            self.submit_tasks(CLAIM_SAMPLES)
            claim = history.claim_latency(WORKFLOW, CLAIM_SAMPLES)
            burst = self.burst(f"scale-{level}", self.concurrency)
            levels[str(level)] = {
                "seed_seconds": seeded,
                "claim_ms": claim,
                "steps_per_second": burst["steps_per_second"],
                "tasks_per_second": burst["tasks_per_second"],
            }
            log(
                self.backend,
                f"history {level:,}: seeded in {seeded:.1f}s, claim p50 {claim['p50']:.2f} ms, "
                f"{burst['steps_per_second']:.0f} steps/s",
            )
        self.result["scale"] = levels

    # -- all of it

    def run(self) -> dict[str, Any]:
        """Measure everything for this backend; returns the results."""
        log(self.backend, "preparing a fresh database")
        try:
            return self._run_sections()
        finally:
            if self.mariadb:  # a shared server: leave no database behind
                self._drop_mariadb()

    def _drop_mariadb(self) -> None:
        from django.db import connections

        connections.close_all()
        if self.mysql_counter is not None:
            self.mysql_counter.close()
        drop_mysql_database(MYSQL_DB)
        log(self.backend, f"dropped the database {MYSQL_DB!r}")

    def _run_sections(self) -> dict[str, Any]:
        import django

        self.prepare_database()
        django.setup()
        self.result["server"] = self.server_facts()
        sections = self.sections
        if "throughput" in sections:
            self.measure_raw_commits()
            if self.redis:
                pairs = self.raw_redis_pairs_per_second()
                self.result["raw_redis_pairs_per_second"] = pairs
                log(self.backend, f"raw Redis LPUSH+BRPOP pairs/s: {pairs:.0f} (1 client)")
            self.measure_startup()
            self.measure_throughput()
        if "latency" in sections:
            self.measure_latency()
        if self.sweep and "sweep" in sections:
            self.measure_sweep()
        if self.memory_tasks and "memory" in sections:
            self.measure_memory()
        if (self.wait_samples or self.waiting_levels) and "waits" in sections:
            self.result["waits"] = waits.measure(self)
        if (self.fan_out_sizes or self.fan_out_samples) and "fan-out" in sections:
            self.result["fan_out"] = fanout.measure(self)
        if (self.graph_tasks or self.graph_samples) and "graph" in sections:
            self.result["graph"] = graphs.measure(self)
        if self.schedule_sizes and "schedules" in sections:
            self.result["schedules"] = schedules.measure(self)
        if "django-tasks" in sections:
            self.result["django_tasks"] = tasks_section.measure(self)
        # Redis claims by id: history is no cost to it.
        if self.history_levels and not self.redis and "scale" in sections:
            self.measure_scale()
        # Last: it sets an OpenTelemetry SDK in this process (the tasks it submits are traced).
        if "observability" in sections:
            self.result["observability"] = observability.measure(self)
        if self.stat_conn is not None:
            self.stat_conn.close()
        return self.result


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """SIGTERM ``proc`` and wait for it; SIGKILL it after ``timeout`` seconds. Its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _rss_mib(pid: int) -> float | None:
    """Resident set size of process ``pid`` in MiB (Linux ``/proc``), or None elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def measure_main(args: argparse.Namespace) -> int:
    """Entry point of the per-backend measuring process."""
    workdir = Path(args.workdir)
    os.environ.update(bench_env(args.measure, workdir))
    sys.path.insert(0, str(REPO))
    result = Measurement(args.measure, workdir, args).run()
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0
