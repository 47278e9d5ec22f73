"""Benchmark salvador-django against the raw database and its peers, in one run.

Usage (from the repository root, with the ``bench`` extra installed)::

    .venv/bin/python benchmarks/run.py [--quick]
        [--backends sqlite,postgres,postgres+redis,mariadb,mariadb+redis]
        [--peers celery,dbos,procrastinate] [--tasks 2000] [--concurrency 4]
        [--latency-samples 200] [--sweep 1,2,4,8] [--history 0,100000,1000000]
        [--memory 1000,20000] [--wait-samples 200] [--waiting 0,100000]
        [--fan-out 1000,10000] [--fan-out-samples 20] [--fan-out-children 100]
        [--graph-tasks 500] [--graph-samples 10] [--schedules 100,10000]
        [--schedule-due 1,100,1000] [--schedule-seconds 30]
        [--sections throughput,latency,sweep,memory,waits,fan-out,graph,schedules,
                    django-tasks,scale,observability]
        [--json PATH]
        [--charts DIR]

This is a benchmark, not a test: it prints figures, ratios measured in the same run
and whether each target is met, and exits non-zero only when a run went wrong (a
worker failed, tasks were left unfinished). ``docs/benchmarks.md`` gives the method
and the latest figures.

Each backend is measured in a fresh process of this script (``benchmarks/measure.py``),
because Django settings select one database per process. Backends: ``sqlite``,
``postgres`` and ``mariadb`` use the database queue (on SQLite and MariaDB idle
workers poll every ``POLL_INTERVAL``: no LISTEN/NOTIFY); ``postgres+redis`` and
``mariadb+redis`` store tasks in the same PostgreSQL or MariaDB database and queue them
in Redis (a fresh key prefix per run, deleted afterwards). A backend whose server is
unreachable (or, for MariaDB, without mysqlclient) is skipped, saying why. The
PostgreSQL and MariaDB databases are created afresh for each backend; MariaDB's is
dropped at the end. Per backend:

1. Raw ceiling: single-row ``UPDATE`` commits/s through the raw driver (sqlite3,
   psycopg, mysqlclient), autocommit, with 1 connection and with ``--concurrency``
   connections (a thread each); for the ``+redis`` backends also LPUSH+BRPOP pairs/s
   from one redis-py client.
2. Throughput: ``--tasks`` tasks of 3 no-op steps submitted up front, then ONE
   ``runworkflows --burst`` process timed from spawn to exit, with ``--pool threads``
   and with ``--pool processes``; tasks/s, steps/s, commits per step (PostgreSQL's
   ``pg_stat_database.xact_commit``; MariaDB's InnoDB committed transactions,
   server-wide), worker CPU and (local server) server CPU per step, steps/s / raw
   commits/s.
3. Latency: tasks submitted one at a time to an idle long-running worker: submit ->
   step one's start, and submit -> completed, p50/p95/p99.
4. Sweep: burst steps/s at each ``--sweep`` concurrency.
5. Memory: RSS of one long-running worker after each ``--memory`` count of tasks.
6. Scale: with each ``--history`` number of finished tasks bulk-inserted, the claim's
   latency and burst steps/s.
7. Waits (``benchmarks/waits.py``; it runs before the scale section): ``--wait-samples``
   signal round trips (``send_signal()`` -> the waiting step running again) and timer
   lateness (sleeps of 0.2-1 s: the woken step's start - its due time), p50/p95/p99,
   with the raw wake-up (NOTIFY -> LISTEN, LPUSH -> BRPOP) beside them; then, with
   each ``--waiting`` number of waiting tasks bulk-inserted, the claim's latency, an
   idle worker's statements/s (and, on PostgreSQL, its commits and rows read) and a
   worker's RSS.
8. Fan-out (``benchmarks/fanout.py``; between waits and scale): a parent mapping N no-op
   children and waiting for them, against N independent no-op tasks on the same
   long-running worker, for each ``--fan-out`` size N (``--repeat`` times, medians);
   and the parent's resume latency (its next step's start - the last child's finish)
   over ``--fan-out-samples`` parents of ``--fan-out-children``, p50/p95/p99. Then,
   in this process, Celery's ``chord`` of the same no-op tasks on Redis
   (``benchmarks/peers/celery_chord.py``, ``-P prefork -c 2`` and, unless ``--quick``,
   ``-P threads -c C``), when Redis is reachable.
9. Graph (``benchmarks/graphs.py``; between fan-out and scale): ``--graph-tasks`` tasks
   of a diamond of no-op steps (one, four at the same time, one) and as many of a
   straight line of 6 no-op steps, each through one burst worker as in 2 (threads and
   processes, ``--repeat`` times, medians): steps/s and commits per step side by side.
   Then ``--graph-samples`` tasks of 8 independent 100 ms steps, one at a time, on a
   long-running ``runworkflows --concurrency 8`` (threads, then ``--pool processes``):
   the task's started_at -> finished_at against the longest step's 100 ms.
10. Schedules (``benchmarks/schedules.py``; between graph and scale): with each
   ``--schedules`` number of schedules in the table (none due), a tick round's statements
   (the lookups of the due ones among them, and whether its plan reads the index) and
   time; the same with each ``--schedule-due`` number of them due, and ticks/s beside a
   bare INSERT of as many tasks and ``submit()`` of them; then 5 schedules every second
   ticked by a long-running worker for ``--schedule-seconds``: each tick's task submitted,
   and started, after its due time, p50/p99.
11. Django tasks (``benchmarks/tasks_section.py``; between schedules and scale): one-step
   Django tasks through our ``SalvadorBackend`` against django-tasks-db's ``db_worker``
   (``benchmarks/peers/tasks_db_worker.py``) on the same database: ``--tasks`` no-op
   tasks enqueued, then one burst worker as in 2 (threads) against one ``db_worker
   --batch`` (``--repeat`` times, medians), tasks/s and the ratio; and
   ``--latency-samples`` tasks enqueued one at a time to an idle worker of each: enqueue
   -> the task's start, p50/p95/p99. Skipped without django-tasks-db. It runs in a
   measuring process of its own, the only one with ``TASKS`` configured.
12. Observability (``benchmarks/observability.py``; last): burst steps/s as in 2 (threads)
   with signals, tracing and metrics off and with all on (an OpenTelemetry SDK with a
   batch span processor and Prometheus metrics in the worker), alternated ``--repeat``
   times, medians and the drop; and what the engine's hooks cost per step with
   everything off, in nanoseconds, against the worker's CPU time per step.

``--sections`` runs only some of these (default: all); the raw ceiling and the
worker's start-up belong to ``throughput``. Every section runs on the MariaDB backends
as on PostgreSQL's (their commits: InnoDB's committed transactions, server-wide,
``benchmarks/mariadb_commits.py``), and the report ends with MariaDB's targets
(``benchmarks/mariadb_report.py``). For the waits figures alone::

    .venv/bin/python benchmarks/run.py --sections waits

Peers (``--peers``) run the same workload with their own scripts in
``benchmarks/peers/`` and one worker process: Celery 5 chains on Redis (``-P threads
-c C`` and ``-P prefork -c 2``), a DBOS queue on the same PostgreSQL, procrastinate
with LISTEN/NOTIFY; each at ``--concurrency`` with latency, then at each ``--sweep``
concurrency for throughput only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import secrets
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import SECTIONS
from benchmarks.servers import (
    BACKENDS,
    REDIS_BACKENDS,
    REPO,
    Result,
    log,
    redis_delete_prefix,
    redis_unreachable,
    unreachable,
)

PEERS = ("celery", "dbos", "procrastinate")
TASKS_SECTION = "django-tasks"
PEER_TIMEOUT_SECONDS = 900
CHORD_TIMEOUT_SECONDS = 3600
CELERY_PREFORK_CONCURRENCY = 2  # the like-for-like Celery setup


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


def _counts(text: str) -> list[int]:
    """A comma-separated list of non-negative integers (empty: none)."""
    values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be 0 or more")
    return values


def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--quick`` lowers every default for a short run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        type=lambda text: _names(text, BACKENDS, "backend"),
        help=f"comma-separated: {','.join(BACKENDS)} (default: all; a backend whose server is "
        "unreachable, or MariaDB without mysqlclient, is skipped with the reason)",
    )
    parser.add_argument(
        "--peers",
        default="",
        type=lambda text: _names(text, PEERS, "peer"),
        help="comma-separated: celery,dbos,procrastinate (default: none)",
    )
    parser.add_argument("--tasks", type=int, help="tasks per throughput run (2000; quick 500)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads (default 4)")
    parser.add_argument("--latency-samples", type=int, help="latency tasks (200; quick 50)")
    parser.add_argument("--sweep", type=_counts, help="concurrencies (1,2,4,8; quick: none)")
    parser.add_argument(
        "--history", type=_counts, help="finished rows for the scale runs (0,100000,1000000; "
        "quick 0,10000)"
    )  # fmt: skip
    parser.add_argument("--memory", type=_counts, help="RSS after n tasks (1000,20000; quick 200)")
    parser.add_argument(
        "--wait-samples", type=int, help="signal round trips and timed sleeps (200; quick 20; "
        "0: none)"
    )  # fmt: skip
    parser.add_argument(
        "--waiting", type=_counts, help="waiting tasks in the table for the claim, idle-worker "
        "and RSS runs of the waits section (0,100000; quick 0,10000)"
    )  # fmt: skip
    parser.add_argument(
        "--fan-out", type=_counts, help="children of one parent, against as many independent "
        "tasks (1000,10000; quick 50,150)"
    )  # fmt: skip
    parser.add_argument(
        "--fan-out-samples", type=int, help="parents, one at a time, for the resume latency "
        "(20; quick 3; 0: none)"
    )  # fmt: skip
    parser.add_argument(
        "--fan-out-children", type=int, help="children of each of those parents (100; quick 20)"
    )
    parser.add_argument(
        "--graph-tasks", type=int, help="tasks of the diamond, and of the straight line, per "
        "burst of the graph section (500; quick 200; 0: none)"
    )  # fmt: skip
    parser.add_argument(
        "--graph-samples", type=int, help="tasks of 8 parallel 100 ms steps, one at a time, "
        "per pool (10; quick 3; 0: none)"
    )  # fmt: skip
    parser.add_argument(
        "--schedules", type=_counts, help="schedules in the table for the schedules section "
        "(100,10000; quick the same)"
    )  # fmt: skip
    parser.add_argument(
        "--schedule-due", type=_counts, help="of them due at once, ticked by one round (1,100,"
        "1000; quick 1,100)"
    )  # fmt: skip
    parser.add_argument(
        "--schedule-seconds", type=float, help="seconds of schedules every second ticked by "
        "a worker, for their lateness (30; quick 5; 0: none)"
    )  # fmt: skip
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        type=lambda text: _names(text, SECTIONS, "section"),
        help=f"comma-separated, of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--repeat", type=int, help="throughput runs at --concurrency; the median is kept (3; "
        "quick 1)"
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a short run with small defaults")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--charts", metavar="DIR", help="draw the two charts (PNG) into DIR")
    parser.add_argument("--measure", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "tasks": 500 if quick else 2000,
        "latency_samples": 50 if quick else 200,
        "sweep": [] if quick else [1, 2, 4, 8],
        "history": [0, 10_000] if quick else [0, 100_000, 1_000_000],
        "memory": [200] if quick else [1_000, 20_000],
        "repeat": 1 if quick else 3,
        "wait_samples": 20 if quick else 200,
        "waiting": [0, 10_000] if quick else [0, 100_000],
        "fan_out": [50, 150] if quick else [1_000, 10_000],
        "fan_out_samples": 3 if quick else 20,
        "fan_out_children": 20 if quick else 100,
        "graph_tasks": 200 if quick else 500,
        "graph_samples": 3 if quick else 10,
        "schedules": [100, 10_000],
        "schedule_due": [1, 100] if quick else [1, 100, 1_000],
        "schedule_seconds": 5.0 if quick else 30.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.wait_samples, args.fan_out_samples, args.graph_tasks, args.graph_samples) < 0:
        parser.error(
            "--wait-samples, --fan-out-samples, --graph-tasks and --graph-samples must be 0 or more"
        )
    if any(n < 1 for n in args.schedule_due) or args.schedule_seconds < 0:
        parser.error("--schedule-due counts must be at least 1, --schedule-seconds 0 or more")
    if any(n < 1 for n in args.fan_out):
        parser.error("--fan-out sizes must be at least 1")
    if min(args.tasks, args.concurrency, args.latency_samples, args.repeat) < 1:
        parser.error("--tasks, --concurrency, --latency-samples and --repeat must be at least 1")
    if args.fan_out_children < 1:
        parser.error("--fan-out-children must be at least 1")
    if any(c < 1 for c in args.sweep):
        parser.error("--sweep concurrencies must be at least 1")
    if not args.backends and not args.peers:
        parser.error("nothing to measure: give --backends or --peers")
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


def measure_backend(backend: str, args: argparse.Namespace) -> Result:
    """Run the measuring process(es) of ``backend``; returns its results (or its error).

    The django-tasks section has a process of its own, the only one whose settings
    configure ``TASKS`` (``SALVADOR_BENCH_TASKS=1``): our task backend relays our
    signals to Django's, and no other section's workers should carry those receivers.
    """
    others = [s for s in args.sections if s != TASKS_SECTION]
    result = _measure(backend, args, others) if others else None
    if TASKS_SECTION not in args.sections:
        assert result is not None
        return result
    tasks = _measure(backend, args, [TASKS_SECTION], {"SALVADOR_BENCH_TASKS": "1"})
    if result is None:
        return tasks
    if "error" in tasks:
        tasks = {"errors": [f"{TASKS_SECTION}: {tasks['error']}"]}
    if "error" not in result:
        result["errors"] += tasks["errors"]
        if "django_tasks" in tasks:
            result["django_tasks"] = tasks["django_tasks"]
    return result


def _measure(
    backend: str,
    args: argparse.Namespace,
    sections: list[str],
    extra_env: dict[str, str] | None = None,
) -> Result:
    """One measuring process of ``backend`` for ``sections``; its results (or its error)."""
    env = {**os.environ, **(extra_env or {})}
    if backend in REDIS_BACKENDS:
        env["SALVADOR_BENCH_REDIS_PREFIX"] = f"salvador-bench:{secrets.token_hex(6)}:"
    with tempfile.TemporaryDirectory(prefix=f"salvador-bench-{backend}-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            *("--measure", backend, "--workdir", tmp, "--result", str(out)),
            *("--tasks", str(args.tasks), "--concurrency", str(args.concurrency)),
            *("--latency-samples", str(args.latency_samples)),
            *("--sweep", ",".join(map(str, args.sweep))),
            *("--history", ",".join(map(str, args.history))),
            *("--memory", ",".join(map(str, args.memory))),
            *("--repeat", str(args.repeat)),
            *("--wait-samples", str(args.wait_samples)),
            *("--waiting", ",".join(map(str, args.waiting))),
            *("--fan-out", ",".join(map(str, args.fan_out))),
            *("--fan-out-samples", str(args.fan_out_samples)),
            *("--fan-out-children", str(args.fan_out_children)),
            *("--graph-tasks", str(args.graph_tasks)),
            *("--graph-samples", str(args.graph_samples)),
            *("--schedules", ",".join(map(str, args.schedules))),
            *("--schedule-due", ",".join(map(str, args.schedule_due))),
            *("--schedule-seconds", str(args.schedule_seconds)),
            *("--sections", ",".join(sections)),
        ]
        try:
            code = subprocess.run(command, cwd=REPO, env=env).returncode
        finally:
            if backend in REDIS_BACKENDS:
                cleanup = _redis_cleanup(backend, env["SALVADOR_BENCH_REDIS_PREFIX"])
        if code != 0 or not out.exists():
            return {"error": f"measuring process exited {code}"}
        result: Result = json.loads(out.read_text())
    if backend in REDIS_BACKENDS:
        result["redis_cleanup"] = cleanup
        if "error" in cleanup:
            result["errors"].append(cleanup["error"])
    return result


def _peer_runs(peer: str, concurrency: int) -> list[tuple[str, str, list[str], int]]:
    """(name, script, extra arguments, concurrency) of each measured setup of ``peer``."""
    if peer == "celery":
        return [
            ("celery-threads", "celery_chain.py", ["--pool", "threads"], concurrency),
            (
                "celery-prefork",
                "celery_chain.py",
                ["--pool", "prefork"],
                CELERY_PREFORK_CONCURRENCY,
            ),
        ]
    script = {"dbos": "dbos_queue.py", "procrastinate": "procrastinate_chain.py"}[peer]
    return [(peer, script, [], concurrency)]


def _run_peer_script(
    script: str, arguments: list[str], timeout: float = PEER_TIMEOUT_SECONDS
) -> Result:
    """Run one peer script; returns its JSON result, or an error."""
    pythonpath = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + pythonpath if pythonpath else "")}
    with tempfile.TemporaryDirectory(prefix="salvador-bench-peer-") as tmp:
        out = Path(tmp) / "peer.json"
        command = [sys.executable, str(REPO / "benchmarks" / "peers" / script), *arguments]
        try:
            code = subprocess.run(
                [*command, "--json", str(out)], cwd=REPO, env=env, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            return {"errors": [f"{script} ran past {timeout:.0f}s"]}
        result: Result = json.loads(out.read_text()) if out.exists() else {"errors": []}
    if code != 0:
        result.setdefault("errors", []).append(f"{script} exited {code}")
    return result


def measure_peers(args: argparse.Namespace) -> dict[str, Result]:
    """Each peer at the run's concurrency (with latency), then throughput at each sweep level."""
    results: dict[str, Result] = {}
    for peer in args.peers:
        for name, script, extra, concurrency in _peer_runs(peer, args.concurrency):
            common = [*("--tasks", str(args.tasks)), *extra]
            log(name, f"measuring at concurrency {concurrency}")
            result = _run_peer_script(
                script,
                [
                    *common,
                    *("--concurrency", str(concurrency)),
                    *("--latency-samples", str(args.latency_samples)),
                ],
            )
            runs = [result.get("throughput") or {}]
            for _ in range(args.repeat - 1):
                log(name, "repeating the throughput run")
                again = _run_peer_script(
                    script, [*common, "--concurrency", str(concurrency), "--skip-latency"]
                )
                result.setdefault("errors", []).extend(again.get("errors", []))
                runs.append(again.get("throughput") or {})
            measured = sorted(
                (run for run in runs if run.get("tasks_per_second")),
                key=lambda run: run["tasks_per_second"],
            )
            if measured:
                result["throughput"] = measured[len(measured) // 2]
                result["throughput"]["tasks_per_second_runs"] = [
                    run["tasks_per_second"] for run in measured
                ]
            sweep: dict[str, float] = {}
            for level in args.sweep:
                log(name, f"sweep: concurrency {level}")
                point = _run_peer_script(
                    script, [*common, "--concurrency", str(level), "--skip-latency"]
                )
                if point.get("errors") or not point.get("throughput"):
                    result.setdefault("errors", []).extend(point.get("errors", []))
                    continue
                sweep[str(level)] = point["throughput"]["steps_per_second"]
            result["sweep"] = sweep
            results[name] = result
    return results


def measure_chords(args: argparse.Namespace) -> tuple[dict[str, Result], str | None]:
    """Celery's chord of the fan-out section's sizes on Redis: (results, why skipped).

    Prefork with 2 processes (the chain peer's like-for-like setup) and, unless
    ``--quick``, threads at ``--concurrency``.
    """
    why = redis_unreachable()
    if why is None and importlib.util.find_spec("celery") is None:
        why = "Celery is not installed"
    if why is not None:
        log("celery-chord", f"skipped: {why}")
        return {}, why
    pools = [("prefork", CELERY_PREFORK_CONCURRENCY)]
    if not args.quick:
        pools.append(("threads", args.concurrency))
    results: dict[str, Result] = {}
    for pool, concurrency in pools:
        log(f"celery-chord-{pool}", f"measuring at concurrency {concurrency}")
        arguments = [
            *("--sizes", ",".join(map(str, args.fan_out)), "--samples", str(args.fan_out_samples)),
            *("--children", str(args.fan_out_children)),
            *("--pool", pool, "--concurrency", str(concurrency), "--repeat", str(args.repeat)),
        ]
        results[f"celery-chord-{pool}"] = _run_peer_script(
            "celery_chord.py", arguments, timeout=CHORD_TIMEOUT_SECONDS
        )
    return results, None


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each backend in its own process, then the peers; print the report."""
    args = parse_args(argv)
    if args.measure:
        from benchmarks.measure import measure_main

        return measure_main(args)
    from benchmarks.report import print_report

    results: Result = {
        "machine": machine_facts(),
        "args": {
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "latency_samples": args.latency_samples,
            "sweep": args.sweep,
            "history": args.history,
            "memory": args.memory,
            "repeat": args.repeat,
            "wait_samples": args.wait_samples,
            "waiting": args.waiting,
            "fan_out": args.fan_out,
            "fan_out_samples": args.fan_out_samples,
            "fan_out_children": args.fan_out_children,
            "graph_tasks": args.graph_tasks,
            "graph_samples": args.graph_samples,
            "schedules": args.schedules,
            "schedule_due": args.schedule_due,
            "schedule_seconds": args.schedule_seconds,
            "sections": args.sections,
            "steps_per_task": 3,
        },
        "backends": {},
        "peers": {},
    }
    for backend in args.backends:
        why = unreachable(backend)
        if why:
            print(f"[{backend}] skipped: {why}", flush=True)
            continue
        results["backends"][backend] = measure_backend(backend, args)
    results["peers"] = measure_peers(args)
    if "fan-out" in args.sections and (args.fan_out or args.fan_out_samples):
        results["fan_out_peers"], skipped = measure_chords(args)
        if skipped:
            results["fan_out_peers_skipped"] = skipped
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nresults written to {args.json}")
    if args.charts:
        from benchmarks.charts import render

        for path in render(results, Path(args.charts)):
            print(f"chart written to {path}")
    failed = any(r.get("errors") or "error" in r for r in results["backends"].values())
    peers = [*results["peers"].values(), *results.get("fan_out_peers", {}).values()]
    failed = failed or any(p.get("errors") for p in peers)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
