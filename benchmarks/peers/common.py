"""Helpers shared by the peer benchmarks (Celery, DBOS, procrastinate).

Every peer script measures the same workload as ``benchmarks/run.py``: a workflow of
three no-op steps. Each script is a CLI with the same arguments (:func:`parse_args`)
and writes one JSON result of the same shape (:func:`new_result`):

- throughput: N workflows are submitted up front (untimed), then ONE worker process
  (concurrency C) is started and timed from its start until all N are complete, by
  polling a cheap completion counter every 50 ms (:func:`time_throughput`). The
  worker's startup is included; when it became ready is recorded separately.
- latency: with an idle worker running, workflows are submitted one at a time after a
  random gap; ``start_ms`` is submit -> step one's ``time.time()``, ``complete_ms`` is
  submit -> the submitter seeing the workflow done (:func:`measure_latency`).

Connection settings come from ``SALVADOR_BENCH_PG_HOST``/``_PORT``/``_USER`` (default
127.0.0.1, 5432, postgres) and ``SALVADOR_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379``; its database number is replaced by the peer's own). The
PostgreSQL peers ANALYZE their fresh database after the untimed submission, unless
``SALVADOR_BENCH_PEER_ANALYZE=0`` (:func:`analyze_enabled`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks.servers import percentile, pg_params

REPO = Path(__file__).resolve().parents[2]
STEPS = 3
WARMUP_SAMPLES = 5
IDLE_SECONDS = 1.0
MAX_GAP_SECONDS = 0.05
COMPLETION_POLL_SECONDS = 0.05
LATENCY_POLL_SECONDS = 0.001

Result = dict[str, Any]


class BenchError(RuntimeError):
    """A run went wrong: a worker failed, or workflows were left unfinished."""


# --------------------------------------------------------------------------- arguments


def parse_args(description: str, *, pools: Sequence[str] = ()) -> argparse.Namespace:
    """The common command line; ``pools`` adds ``--pool`` (first value is the default)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tasks", type=int, default=2000, help="workflows timed (default 2000)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker concurrency (4)")
    parser.add_argument(
        "--latency-samples", type=int, default=200, help="latency samples (default 200)"
    )
    parser.add_argument("--json", type=Path, help="write the result to this file")
    parser.add_argument("--skip-latency", action="store_true", help="throughput only")
    parser.add_argument("--skip-throughput", action="store_true", help="latency only")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before a phase fails (600)"
    )
    if pools:
        parser.add_argument("--pool", choices=pools, default=pools[0], help="worker pool")
    args = parser.parse_args()
    if args.tasks < 1 or args.concurrency < 1 or args.latency_samples < 1:
        parser.error("--tasks, --concurrency and --latency-samples must be at least 1")
    if args.skip_latency and args.skip_throughput:
        parser.error("--skip-latency and --skip-throughput leave nothing to measure")
    return args


# --------------------------------------------------------------------------- connections


def pg_url(dbname: str, scheme: str = "postgresql") -> str:
    """A URL of ``dbname`` on the benchmark's server (password from libpq's own sources)."""
    p = pg_params()
    return f"{scheme}://{p['user']}@{p['host']}:{p['port']}/{dbname}"


def analyze_enabled() -> bool:
    """Whether to ANALYZE after the up-front submission (``SALVADOR_BENCH_PEER_ANALYZE``).

    On by default: a fresh database has no planner statistics, and a queue table that
    grew from empty to N rows untimed is then scanned as if tiny (procrastinate's
    throughput halves at N=2000). Autovacuum would have analyzed a live table.
    """
    return os.environ.get("SALVADOR_BENCH_PEER_ANALYZE", "1") != "0"


def analyze(conn: Any) -> str:
    """ANALYZE the connection's database if enabled; a note for the settings."""
    if not analyze_enabled():
        return "no ANALYZE before timing"
    conn.execute("ANALYZE")
    return "ANALYZE after the untimed submission"


def redis_url(db: int) -> str:
    """``SALVADOR_BENCH_REDIS_URL`` with its database number replaced by ``db``."""
    base = urlsplit(os.environ.get("SALVADOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    return urlunsplit(base._replace(path=f"/{db}"))


# --------------------------------------------------------------------------- results


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` plus Python's."""
    found = {name: metadata.version(name) for name in packages}
    return {**found, "python": platform.python_version()}


def new_result(peer: str, args: argparse.Namespace, packages: Sequence[str]) -> Result:
    """An empty result of the shared shape."""
    return {
        "peer": peer,
        "versions": versions(*packages),
        "settings": "",
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "throughput": None,
        "latency": None,
        "errors": [],
    }


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the summary."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(result: Result) -> str:
    """A short human summary of ``result``."""
    lines = [f"{result['peer']} ({result['settings']})"]
    tp = result.get("throughput")
    if tp:
        ready = tp.get("worker_ready_seconds")
        lines.append(
            f"  throughput: {tp['completed']}/{result['tasks']} workflows in "
            f"{tp['seconds']:.2f} s = {tp['tasks_per_second']:.1f} workflows/s, "
            f"{tp['steps_per_second']:.1f} steps/s at concurrency {result['concurrency']}"
            + (f" (worker ready after {ready:.2f} s)" if ready is not None else "")
        )
    lat = result.get("latency")
    if lat and lat["start_ms"]:
        parts = []
        for key in ("start_ms", "complete_ms"):
            ms = lat[key]
            parts.append(
                f"{key[:-3]} p50 {percentile(ms, 50):.1f} / p95 {percentile(ms, 95):.1f}"
                f" / p99 {percentile(ms, 99):.1f} ms"
            )
        lines.append(f"  latency ({len(lat['start_ms'])} samples): " + "; ".join(parts))
    lines.extend(f"  error: {e.splitlines()[0] if e else e}" for e in result["errors"])
    return "\n".join(lines)


def finish(result: Result, path: Path | None) -> int:
    """Print the summary, write the JSON file; the exit code (1 if there were errors)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result), flush=True)
    return 1 if result["errors"] else 0


# --------------------------------------------------------------------------- processes


class Worker:
    """A worker subprocess in its own session; output goes to a temporary log file."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str] | None = None):
        self.name = name
        self.command = list(command)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"peer-{name}-", suffix=".log"
        )
        self.started_at = 0.0
        self.exit_code: int | None = None

    def start(self) -> Worker:
        """Start the process; ``started_at`` is ``time.monotonic()`` just before."""
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def check_alive(self) -> None:
        """Raise :class:`BenchError` (with the log's tail) if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(
                f"{self.name} worker exited {self.proc.returncode} early:\n{self.output()}"
            )

    def output(self, limit: int = 3000) -> str:
        """The last ``limit`` characters the process wrote."""
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return text[-limit:]

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the process (SIGKILL its process group after ``timeout``); its code."""
        proc = self.proc
        if proc is None:
            return self.exit_code
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Children it left behind (a prefork pool) share its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.exit_code = proc.returncode
        self.proc = None
        return self.exit_code

    def close(self) -> None:
        """Stop the process and delete its log."""
        self.stop()
        self.log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def python_command(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter (run from the repository root)."""
    return [sys.executable, "-m", module, *args]


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout: float,
    interval: float = COMPLETION_POLL_SECONDS,
    worker: Worker | None = None,
) -> float:
    """Poll ``condition`` until true; seconds waited. Fails if the worker dies first."""
    start = time.monotonic()
    while not condition():
        if worker is not None:
            worker.check_alive()
        if time.monotonic() - start > timeout:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def run_worker_until_signalled(stop_requested: Callable[[], None]) -> None:
    """In a worker process: call ``stop_requested`` on SIGTERM or SIGINT."""

    def handler(signum: int, frame: object) -> None:
        stop_requested()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# --------------------------------------------------------------------------- measuring


def time_throughput(
    worker: Worker,
    tasks: int,
    count_done: Callable[[], int],
    is_ready: Callable[[], bool] | None,
    timeout: float,
) -> Result:
    """Start ``worker`` and time it until ``count_done()`` reaches ``tasks``.

    ``is_ready`` (polled alongside until true) dates when the worker became ready.
    """
    ready_after: float | None = None
    worker.start()
    start = worker.started_at
    done = 0
    while True:
        now = time.monotonic()
        if ready_after is None and is_ready is not None and is_ready():
            ready_after = now - start
        done = count_done()
        if done >= tasks:
            break
        worker.check_alive()
        if now - start > timeout:
            raise BenchError(f"timed out after {timeout:.0f} s with {done}/{tasks} complete")
        time.sleep(COMPLETION_POLL_SECONDS)
    seconds = time.monotonic() - start
    return {
        "seconds": seconds,
        "tasks_per_second": tasks / seconds,
        "steps_per_second": STEPS * tasks / seconds,
        "completed": done,
        "worker_ready_seconds": ready_after,
    }


def measure_latency(samples: int, run_one: Callable[[int], tuple[float, float]]) -> Result:
    """Sample ``run_one(i)`` -> (step one's start, done seen), both ``time.time()``.

    ``run_one`` submits one workflow and waits for it; the submit time is taken here,
    just before the call. Warm-up samples (negative ``i``) are dropped.
    """
    rng = random.Random(0)
    for i in range(WARMUP_SAMPLES):
        run_one(-1 - i)
    time.sleep(IDLE_SECONDS)
    start_ms: list[float] = []
    complete_ms: list[float] = []
    for i in range(samples):
        # A random gap, so submissions do not lock step with a polling phase.
        time.sleep(rng.uniform(0, MAX_GAP_SECONDS))
        submitted = time.time()
        started, seen = run_one(i)
        start_ms.append((started - submitted) * 1000)
        complete_ms.append((seen - submitted) * 1000)
    return {"start_ms": start_ms, "complete_ms": complete_ms}


@contextlib.contextmanager
def recording_errors(result: Result, phase: str) -> Iterator[None]:
    """Record an exception of ``phase`` in ``result["errors"]`` instead of raising it."""
    try:
        yield
    except Exception as exc:
        result["errors"].append(f"{phase}: {type(exc).__name__}: {exc}")
        log(f"{phase} failed: {exc}")


def stop_worker(worker: Worker, result: Result, phase: str) -> None:
    """Stop ``worker`` and record a non-zero exit code as an error."""
    code = worker.stop()
    if code not in (0, None):
        result["errors"].append(f"{phase}: worker exited {code} on SIGTERM:\n{worker.output()}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(
    result: Result,
    args: argparse.Namespace,
    *,
    setup: Callable[[], None],
    throughput: Callable[[], Result],
    latency: Callable[[], Result],
    cleanup: Callable[[], None],
) -> int:
    """Run the phases (a failed one skips the rest), always clean up; the exit code.

    SIGTERM is handled like Ctrl-C: workers are stopped and the database cleaned up.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with recording_errors(result, "setup"):
            setup()
        if not args.skip_throughput and not result["errors"]:
            log(f"throughput: {args.tasks} workflows, concurrency {args.concurrency}")
            with recording_errors(result, "throughput"):
                result["throughput"] = throughput()
        if not args.skip_latency and not result["errors"]:
            log(f"latency: {args.latency_samples} samples, concurrency {args.concurrency}")
            with recording_errors(result, "latency"):
                result["latency"] = latency()
    except KeyboardInterrupt:
        result["errors"].append("interrupted")
    finally:
        with recording_errors(result, "cleanup"):
            cleanup()
    return finish(result, args.json)
