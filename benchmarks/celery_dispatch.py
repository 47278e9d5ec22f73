"""Benchmark salvador-django tasks on Celery workers beside ``runworkflows``, in one run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/celery_dispatch.py [--tasks N] [--quick]
        [--latency-samples N] [--concurrency 4]

This is a benchmark, not a test: it prints figures and ratios, and exits non-zero only
when a run went wrong (a worker failed or did not exit 0 on SIGTERM, tasks were left
unfinished, the Celery queue could not be purged).

Two modes, both on PostgreSQL (``SALVADOR_BENCH_DB=postgres``, the database
``salvador_bench``, dropped and created afresh for each mode), each measured in a fresh
process of this script (``--measure MODE``) with the helpers of ``benchmarks/run.py``:

- ``runworkflows``: ``python -m django runworkflows --concurrency C`` on the database
  queue (``benchmarks.settings``).
- ``celery``: ``python -m celery -A benchmarks.celery_app worker --pool threads
  --concurrency C --without-gossip --without-mingle --without-heartbeat`` (plus
  ``--queues`` of this run and ``--loglevel WARNING``), with
  ``SALVADOR["DISPATCH"] = "celery"`` set by ``benchmarks.celery_settings`` from
  ``SALVADOR_BENCH_DISPATCH``. The broker is ``SALVADOR_BENCH_CELERY_BROKER`` (default
  ``redis://127.0.0.1:6379/14``); every run uses a fresh queue, purged (and, on Redis,
  its keys deleted) afterwards. Tasks are still claimed in PostgreSQL; a Celery message
  only says "run task X now". The Celery options are those of ``tests/celery_app.py``
  (acks_late, prefetch multiplier 1; ``SALVADOR_BENCH_CELERY_PREFETCH`` changes it).

A mode whose server is unreachable is skipped. Per mode it measures:

1. Raw baseline (``benchmarks/run.py``): single-row ``UPDATE`` commits/s through psycopg
   in autocommit, 1 connection and C connections; for a Redis broker also LPUSH+BRPOP
   pairs/s on the broker's Redis.
2. Throughput: a long-running worker is started and warmed up (5 tasks run one by one),
   then N ``bench`` tasks (3 no-op steps) are submitted in ONE transaction while it
   idles. The clock starts just before that transaction commits (the inserts are not
   timed) and stops when a 10 ms poll of the database finds none of them pending or
   running. It so includes the commit and the ``on_commit`` announcements (a
   ``pg_notify`` per task, and with Celery dispatch a ``run_task`` message per task,
   sent by the submitting process). Steps/s = 3 x N / seconds.
3. Latency (``Measurement.measure_latency`` of ``benchmarks/measure.py``): a fresh idle
   worker; tasks are submitted one at a time (own transaction); "step 1 start" is step
   one's ``time.time()`` saved in ``task.state["t1"]`` minus the time taken just before
   submit. The worker is then stopped with SIGTERM and must exit 0.

Every worker is stopped in a ``finally`` (SIGTERM, then SIGKILL after 60 s); SIGTERM or
Ctrl-C to this script runs those ``finally`` blocks too. Each measuring process runs in
its own process group, which is checked (and killed) after it exits, so no worker
outlives the run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(REPO))

from benchmarks.measure import RAW_SECONDS, STEPS, WARMUP_TASKS, WORKFLOW, Measurement  # noqa: E402
from benchmarks.report import fmt as _fmt  # noqa: E402
from benchmarks.run import machine_facts  # noqa: E402
from benchmarks.servers import Result, log, postgres_unreachable, redis_connect  # noqa: E402

MODES = ("runworkflows", "celery")
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"  # the default of benchmarks.celery_settings
CELERY_APP = "benchmarks.celery_app"
DONE_POLL_SECONDS = 0.01
STOP_TIMEOUT = 60.0
UNFINISHED = ("pending", "running")


def broker_url() -> str:
    """The Celery broker of the benchmark (same env var as ``benchmarks.celery_settings``)."""
    return os.environ.get("SALVADOR_BENCH_CELERY_BROKER", DEFAULT_BROKER)


def is_redis(url: str) -> bool:
    """Whether the broker ``url`` is a Redis server."""
    return url.startswith(("redis://", "rediss://"))


def broker_unreachable(url: str) -> str | None:
    """Why the broker cannot be used, or None when it can."""
    from kombu.connection import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process so far (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: raise KeyboardInterrupt, so that ``finally`` blocks stop workers."""
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- measuring


class DispatchMeasurement(Measurement):
    """``benchmarks/run.py``'s PostgreSQL measurement, with a long-running worker of ``mode``."""

    def __init__(self, mode: str, workdir: Path, args: argparse.Namespace) -> None:
        super().__init__("postgres", workdir, args)
        self.backend = mode  # the label of the log lines
        self.celery = mode == "celery"
        self.broker = broker_url()
        self.queue = os.environ.get("SALVADOR_BENCH_CELERY_QUEUE", "salvador-bench")
        self.result["mode"] = mode
        self.result["exit_codes"] = {}
        if self.celery:
            self.env.update(
                DJANGO_SETTINGS_MODULE="benchmarks.celery_settings",
                SALVADOR_BENCH_DISPATCH="celery",
                SALVADOR_BENCH_CELERY_BROKER=self.broker,
                SALVADOR_BENCH_CELERY_QUEUE=self.queue,
            )
            if is_redis(self.broker):  # the raw Redis baseline runs on the broker
                self.env["SALVADOR_BENCH_REDIS_URL"] = self.broker
                self.redis_prefix = f"{self.queue}:"

    # -- workers

    def _worker_command(self, *extra: str) -> list[str]:
        if not self.celery:
            return super()._worker_command(*extra)
        return [
            *(sys.executable, "-m", "celery", "-A", CELERY_APP, "worker", "--pool", "threads"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("--queues", self.queue, "--loglevel", "WARNING", *extra),
        ]

    def _wait_listening(self) -> None:
        """Celery workers do not LISTEN: the warm-up tasks showed that this one consumes."""
        if not self.celery:
            super()._wait_listening()

    # -- measures

    def server_facts(self) -> dict[str, str]:
        """PostgreSQL's facts, and the broker's in the Celery mode."""
        facts = super().server_facts()
        if not self.celery:
            return facts
        import celery
        import kombu

        facts["celery"] = str(celery.__version__)
        facts["kombu"] = str(kombu.__version__)
        facts["broker"] = self.broker
        facts["queue"] = self.queue
        if is_redis(self.broker):
            client = redis_connect()
            try:
                info = client.info("server") | client.info("persistence")
            finally:
                client.close()
            facts["redis_version"] = str(info["redis_version"])
            facts["redis appendonly"] = "yes" if info.get("aof_enabled") else "no"
        return facts

    def measure_dispatch_throughput(self) -> None:
        """Submit N tasks in one transaction to an idle long-running worker; time them."""
        from django.db import transaction

        from salvador_django import submit
        from salvador_django.models import Task

        timeout = max(300.0, self.tasks / 5)
        steps = self.tasks * STEPS
        out: dict[str, Any] = {}
        marks: dict[str, float] = {}
        cpu_marks: dict[str, float] = {}

        def mark(name: str) -> None:
            marks[name] = time.perf_counter()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu_marks[name] = usage.ru_utime + usage.ru_stime

        with self.running_worker("throughput") as proc:
            spawned = time.perf_counter()
            for i in range(WARMUP_TASKS):  # the worker is up, connected and idle
                self._wait_done(self._submit_one(-1 - i), timeout=60)
                out.setdefault("worker_ready_seconds", time.perf_counter() - spawned)
            self._wait_listening()
            time.sleep(0.5)
            cpu_before = process_cpu_seconds(proc.pid)
            inserting = time.perf_counter()
            with transaction.atomic():
                # on_commit callbacks run in order: ours first, the tasks' announcements,
                # then ours again.
                transaction.on_commit(lambda: mark("committed"))
                ids = [submit(WORKFLOW, {"i": i}).pk for i in range(self.tasks)]
                transaction.on_commit(lambda: mark("announced"))
                began = time.perf_counter()
            unfinished = Task.objects.filter(workflow=WORKFLOW, status__in=UNFINISHED)
            while unfinished.exists():
                if time.perf_counter() - began > timeout:
                    raise RuntimeError(f"throughput: tasks still unfinished after {timeout:.0f}s")
                time.sleep(DONE_POLL_SECONDS)
            elapsed = time.perf_counter() - began
            cpu_after = process_cpu_seconds(proc.pid)
        out.update(
            seconds=elapsed,
            tasks_per_second=self.tasks / elapsed,
            steps_per_second=steps / elapsed,
            commit_seconds=marks["committed"] - began,
            announce_seconds=marks["announced"] - marks["committed"],
            announce_cpu_ms_per_task=1000
            * (cpu_marks["announced"] - cpu_marks["committed"])
            / self.tasks,
            submit_per_second=self.tasks / (began - inserting),
        )
        if cpu_before is not None and cpu_after is not None:
            out["worker_cpu_ms_per_step"] = 1000 * (cpu_after - cpu_before) / steps
        self.check_burst("throughput", out, Task.objects.filter(pk__in=ids))
        self.result["throughput"] = out
        log(
            self.backend,
            f"throughput: {self.tasks} tasks in {elapsed:.2f}s, "
            f"{out['steps_per_second']:.0f} steps/s ({out['by_status']})",
        )

    def run(self) -> dict[str, Any]:
        """Measure everything for this mode; returns the results."""
        import django

        log(self.backend, "preparing a fresh database")
        self.prepare_database()
        django.setup()
        if self.celery:
            importlib.import_module(CELERY_APP)  # the current Celery app: broker and queue
        self.result["server"] = self.server_facts()
        self.measure_raw_commits()
        if self.celery and is_redis(self.broker):
            pairs = self.raw_redis_pairs_per_second()
            self.result["raw_redis_pairs_per_second"] = pairs
            log(self.backend, f"raw Redis LPUSH+BRPOP pairs/s on the broker: {pairs:.0f}")
        self.measure_dispatch_throughput()
        self.measure_latency()
        if self.stat_conn is not None:
            self.stat_conn.close()
        return self.result


def measure_main(args: argparse.Namespace) -> int:
    """Entry point of the per-mode measuring process."""
    measurement = DispatchMeasurement(args.measure, Path(args.workdir), args)
    os.environ.update(measurement.env)
    result = measurement.run()
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0


# --------------------------------------------------------------------------- broker cleanup


def delete_redis_keys(url: str, queue: str) -> int:
    """Delete every key of the Redis broker ``url`` whose name contains ``queue``."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*", count=1000))  # queue: [a-z0-9-]
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def cleanup_broker(url: str, queue: str) -> dict[str, Any]:
    """Purge and delete ``queue``; on Redis also delete its keys (priority lists, binding)."""
    result: dict[str, Any] = {"queue": queue}
    try:
        from kombu.connection import Connection

        with Connection(url, connect_timeout=3) as conn:
            channel = conn.default_channel
            result["purged"] = int(channel.queue_purge(queue) or 0)
            channel.queue_delete(queue)
        if is_redis(url):
            result["keys_deleted"] = delete_redis_keys(url, queue)
            left = delete_redis_keys(url, queue)  # finds nothing unless keys raced in
            if left:
                result["error"] = f"{left} Redis key(s) of queue {queue!r} appeared after the run"
    except Exception as exc:
        result["error"] = f"could not purge the queue {queue!r}: {exc}"
    log("celery", f"queue {queue!r} purged: {result}")
    return result


# --------------------------------------------------------------------------- orchestration


def kill_group_leftovers(pgid: int) -> bool:
    """SIGKILL whatever is left in the process group ``pgid``; whether anything was."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def run_mode(mode: str, args: argparse.Namespace) -> Result:
    """Measure ``mode`` in a fresh process of this script, in its own process group."""
    env = dict(os.environ)
    queue = f"salvador-bench-{secrets.token_hex(6)}"
    if mode == "celery":
        env.update(SALVADOR_BENCH_CELERY_BROKER=broker_url(), SALVADOR_BENCH_CELERY_QUEUE=queue)
    cleanup: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=f"salvador-bench-{mode}-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            *("--measure", mode, "--workdir", tmp, "--result", str(out)),
            *("--tasks", str(args.tasks), "--concurrency", str(args.concurrency)),
            *("--latency-samples", str(args.latency_samples)),
        ]
        proc = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: let it stop its workers in its finally
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2 * STOP_TIMEOUT)
            leftovers = kill_group_leftovers(proc.pid)
            if mode == "celery":
                cleanup = cleanup_broker(broker_url(), queue)
        if code != 0 or not out.exists():
            result: Result = {"error": f"measuring process exited {code}", "errors": []}
        else:
            result = json.loads(out.read_text())
    if leftovers:
        result["errors"].append("processes were left in the measuring process group (killed)")
    if cleanup:
        result["broker_cleanup"] = cleanup
        if "error" in cleanup:
            result["errors"].append(cleanup["error"])
    return result


# --------------------------------------------------------------------------- reporting


def _rows(concurrency: int) -> list[tuple[str, Callable[[Result], str]]]:
    """The report's rows: a label and how to read its cell from one mode's results."""
    c = str(concurrency)

    def raw(r: Result, conns: str) -> float | None:
        value = r.get("raw_commits_per_second", {}).get(conns)
        return float(value) if value else None

    def tp(key: str, digits: int = 0) -> Callable[[Result], str]:
        return lambda r: _fmt(r.get("throughput", {}).get(key), digits)

    def ratio(key: str) -> Callable[[Result], str]:
        def get(r: Result) -> str:
            steps, base = r.get("throughput", {}).get(key), raw(r, c)
            return _fmt(steps / base, 3) if steps and base else "-"

        return get

    def lat(kind: str, per_commit: bool = False) -> Callable[[Result], str]:
        def get(r: Result) -> str:
            s, base = r.get("latency", {}).get(kind), raw(r, "1")
            if not s or (per_commit and not base):
                return "-"
            unit = 1000 / base if per_commit and base else 1.0  # ms of one raw commit
            return " / ".join(f"{s[p] / unit:.1f}" for p in ("p50", "p95", "p99"))

        return get

    return [
        ("steps/s (commit of N submits -> all completed)", tp("steps_per_second")),
        ("tasks/s (same)", tp("tasks_per_second")),
        ("wall time, s", tp("seconds", 2)),
        ("  of it: commit, s", tp("commit_seconds", 3)),
        ("  of it: on_commit announcements (pg_notify, messages), s", tp("announce_seconds", 3)),
        ("  submitter CPU per task in those announcements, ms", tp("announce_cpu_ms_per_task", 2)),
        ("steps/s (in-DB span: 1st start..last finish)", tp("steps_per_second_in_db_span")),
        ("worker CPU (user+sys) per step, ms", tp("worker_cpu_ms_per_step", 2)),
        ("worker spawn -> 1st warm-up task done, s", tp("worker_ready_seconds", 2)),
        ("raw commits/s, 1 conn", lambda r: _fmt(raw(r, "1"))),
        (f"raw commits/s, {c} conns", lambda r: _fmt(raw(r, c))),
        (
            "raw Redis LPUSH+BRPOP pairs/s on the broker, 1 client",
            lambda r: _fmt(r.get("raw_redis_pairs_per_second")),
        ),
        (f"steps/s / raw commits/s ({c} conns)", ratio("steps_per_second")),
        ("  same, in-DB span", ratio("steps_per_second_in_db_span")),
        ("submit -> step 1 start, p50/p95/p99 ms", lat("start_ms")),
        ("  same / one raw commit's time (1 conn)", lat("start_ms", per_commit=True)),
        ("submit -> completed seen, p50/p95/p99 ms", lat("complete_ms")),
        ("  same / one raw commit's time (1 conn)", lat("complete_ms", per_commit=True)),
        ("idle worker commits/s (PG)", lambda r: _fmt(r.get("idle_commits_per_second"), 1)),
        (
            "SIGTERM exit codes (throughput, latency worker)",
            lambda r: ", ".join(str(v) for v in r.get("exit_codes", {}).values()) or "-",
        ),
        ("submit() rate, tasks/s (untimed inserts)", tp("submit_per_second")),
    ]


def _print_table(measured: dict[str, Result], concurrency: int) -> None:
    """One row per metric, one column per mode."""
    names = list(measured)
    rows = _rows(concurrency)
    width = max(len(label) for label, _ in rows)
    cols = [max(12, *(len(get(measured[n])) for _, get in rows)) for n in names]
    print(" | ".join([" " * width, *(n.rjust(w) for n, w in zip(names, cols, strict=True))]))
    print("-+-".join(["-" * width, *("-" * w for w in cols)]))
    for label, get in rows:
        cells = [get(measured[n]).rjust(w) for n, w in zip(names, cols, strict=True)]
        print(" | ".join([label.ljust(width), *cells]))


def _comparison(measured: dict[str, Result]) -> str | None:
    """Celery's figures as multiples of runworkflows' ones."""
    if not {"runworkflows", "celery"} <= measured.keys():
        return None
    db, cel = measured["runworkflows"], measured["celery"]
    parts = []
    for label, read in (
        ("steps/s", lambda r: r["throughput"]["steps_per_second"]),
        ("steps/s in-DB span", lambda r: r["throughput"].get("steps_per_second_in_db_span")),
        ("step 1 start p50", lambda r: r["latency"]["start_ms"]["p50"]),
        ("step 1 start p99", lambda r: r["latency"]["start_ms"]["p99"]),
        ("worker CPU/step", lambda r: r["throughput"].get("worker_cpu_ms_per_step")),
    ):
        a, b = read(cel), read(db)
        parts.append(f"{label} x{a / b:.2f}" if a and b else f"{label} -")
    return "celery / runworkflows: " + ", ".join(parts)


def print_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the summary table, the machine facts and what is counted."""
    facts = results["machine"]
    measured = {name: r for name, r in results["modes"].items() if "error" not in r}
    print()
    print(
        f"salvador-django Celery dispatch benchmark, {facts['date']}: {args.tasks} tasks x "
        f"{STEPS} steps, concurrency {args.concurrency}, {args.latency_samples} latency "
        f"samples, POLL_INTERVAL {os.environ.get('SALVADOR_BENCH_POLL_INTERVAL', '0.05')} s"
    )
    print(
        f"machine: {facts['cores']} cores, {facts['platform']}; Python {facts['python']}, "
        f"Django {facts['django']}"
    )
    for name, r in measured.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in r.get("server", {}).items()))
        if "broker_cleanup" in r:
            c = r["broker_cleanup"]
            print(
                f"{name}: queue purged after the run ({c.get('purged', '?')} message(s) left), "
                f"{c.get('keys_deleted', '-')} broker key(s) deleted"
            )
    print()
    if measured:
        _print_table(measured, args.concurrency)
        comparison = _comparison(measured)
        if comparison:
            print()
            print(comparison)
    else:
        print("No mode was measured.")
    print()
    print(
        "What is counted:\n"
        f"- raw commits/s (benchmarks/run.py): single-row UPDATEs in autocommit through\n"
        f"  psycopg on salvador_bench, each connection its own thread and row, "
        f"{RAW_SECONDS:.0f} s each;\n"
        "  measured again in each mode's process. Ratios: steps/s divided by it; latencies\n"
        "  divided by one raw commit's time on 1 connection (1000 / commits/s ms).\n"
        "- throughput: a long-running, warmed-up, idle worker; N tasks inserted in ONE\n"
        "  transaction (untimed), the clock starts just before its commit and stops when a\n"
        f"  {DONE_POLL_SECONDS * 1000:.0f} ms poll finds none of them pending or running. "
        "Included: the commit and the\n"
        "  submitter's on_commit announcements (pg_notify per task; with Celery dispatch also\n"
        "  one run_task message per task), which overlap the workers' work. 'in-DB span' is\n"
        "  first started_at .. last finished_at of the N tasks. Worker CPU is read from\n"
        "  /proc for the worker process over the timed window.\n"
        "- runworkflows wakes on LISTEN/NOTIFY and claims from the database queue; the Celery\n"
        "  worker gets one run_task message per task (acks_late, prefetch multiplier "
        f"{os.environ.get('SALVADOR_BENCH_CELERY_PREFETCH', '1')}),\n"
        "  then claims that task in PostgreSQL the same way (conditional update + lease).\n"
        "- latency (benchmarks/run.py's measure_latency): submit() in its own transaction to\n"
        "  an idle worker; 'step 1 start' is step one's time.time() (task.state['t1']) minus\n"
        "  the time taken just before submit; 'completed seen' is when a 1 ms poll of the row\n"
        "  first saw it completed. 'idle worker commits/s' is what the idle worker commits\n"
        "  on PostgreSQL while waiting."
    )
    for name, r in results["modes"].items():
        for error in r.get("errors", []) + ([r["error"]] if "error" in r else []):
            print(f"ERROR [{name}]: {error}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` lowers the defaults of tasks and samples."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", type=int, help="tasks in the throughput run (default 2000)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads (default 4)")
    parser.add_argument(
        "--latency-samples", type=int, help="tasks in the latency run (default 200)"
    )
    parser.add_argument("--quick", action="store_true", help="300 tasks, 50 latency samples")
    parser.add_argument("--measure", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tasks is None:
        args.tasks = 300 if args.quick else 2000
    if args.latency_samples is None:
        args.latency_samples = 50 if args.quick else 200
    if args.tasks < 1 or args.concurrency < 1 or args.latency_samples < 1:
        parser.error("--tasks, --concurrency and --latency-samples must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run each mode in its own process and print the report."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    if args.measure:
        return measure_main(args)
    results: dict[str, Any] = {"machine": machine_facts(), "modes": {}}
    failed = False
    why = postgres_unreachable()
    for mode in MODES:
        if why:
            print(f"[{mode}] skipped: PostgreSQL is unreachable ({why})", flush=True)
            continue
        if mode == "celery":
            broker_why = broker_unreachable(broker_url())
            if broker_why:
                print(f"[{mode}] skipped: the broker {broker_url()} is unreachable ({broker_why})")
                continue
        result = run_mode(mode, args)
        failed = failed or "error" in result or bool(result["errors"])
        results["modes"][mode] = result
    print_report(results, args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
