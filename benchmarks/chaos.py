"""Fault injection: crashes, pauses, broker loss and database restarts lose nothing.

    python benchmarks/chaos.py [--quick] [--queue database|redis] [--db sqlite|postgres|mariadb]

Submits N tasks (quick: 1,000; full: 10,000) of a three-step workflow at a steady
pace while 3 ``runworkflows`` processes of 4 threads run them. Meanwhile it SIGKILLs a
random worker every ~2 s (and starts another), SIGSTOPs one for longer than the lease
every ~10 s (then SIGCONTs it), restarts and flushes Redis and pushes junk into every
key of the queue (Redis queue), and restarts PostgreSQL or MariaDB once (their runs).
Runs with PostgreSQL, MariaDB or Redis start their own server on a free port, so the
machine's shared services are never touched.

Alongside, it submits tasks of a waiting workflow (quick: 100; full: 1,000), whose
steps wait for signals (one with a timeout) and sleep, sends their signals at random
moments (some twice, with the same idempotency key), and pauses and resumes some of
them (see ``benchmarks/faults/waiting_load``); parents of a fan-out workflow
(quick: 25; full: 250), each of which starts 20 children and waits for them (see
``benchmarks/faults/fan_out``); and tasks of a diamond workflow (quick: 100; full:
1,000), one step, then four at the same time, then one that joins them (see
``benchmarks/faults/diamond``), with a kill or a pause every ~4 s aimed at a worker
that runs two of one task's branches or more. The workers tick a scheduled workflow's
schedules throughout (three every second, one every even second), paused at the end.
And it submits tasks of a traced workflow (quick: 100; full: 1,000), each inside a span
of its own, while every process exports its spans to a file (see
``benchmarks/faults/traced``); at the end, with every worker stopped, it reads the
workers table. And it enqueues Django tasks (quick: 100; full: 1,000) on the
``SalvadorBackend`` with Django's ``.enqueue()``, some with a priority, some failing their
first attempt (see ``benchmarks/faults/enqueued``), and reads their results through the
backend at the end.

When every task has finished, it checks the records (``benchmarks/faults/checks`` and
the ``*_checks`` module of each workflow), prints a summary and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.faults import fan_out_records
from benchmarks.faults.checks import Execution, check
from benchmarks.faults.diamond_checks import check_diamonds
from benchmarks.faults.diamond_records import DiamondLoad, Striker, diamond_records
from benchmarks.faults.enqueued_checks import check_enqueued
from benchmarks.faults.enqueued_records import EnqueueLoad, enqueued_records
from benchmarks.faults.fan_out_checks import ParentStart, check_fan_out
from benchmarks.faults.injection import Fleet, Injector, garbage, plan_faults
from benchmarks.faults.rows import three_step_records
from benchmarks.faults.scheduled_checks import check_scheduled
from benchmarks.faults.scheduled_records import pause_schedules, read_log, scheduled_records
from benchmarks.faults.servers import MariaDBServer, PostgresServer, RedisServer
from benchmarks.faults.spans import SPANS_DIR
from benchmarks.faults.summary import (
    diamond_summary,
    enqueued_summary,
    fan_out_summary,
    print_summary,
    scheduled_summary,
    summary,
    timeline,
    traced_summary,
    waits_summary,
)
from benchmarks.faults.traced_checks import check_traced
from benchmarks.faults.traced_load import TracedLoad
from benchmarks.faults.traced_records import traced_records, wait_for_gone
from benchmarks.faults.waiting_checks import check_waits, first_claims
from benchmarks.faults.waiting_load import TAIL, WaitingLoad
from benchmarks.faults.waiting_records import StuckWatch, first_steps, wait_records

REPO = Path(__file__).resolve().parent.parent
WORKERS, THREADS = 3, 4
LEASE_SECONDS, SWEEP_INTERVAL = 3.0, 1.0
QUIESCENCE_TIMEOUT = 180.0
#: How long each step works (a sleep): long enough that a paused worker is likely to
#: be inside a step, the case where a late write could happen. On SQLite an atomic
#: step holds the database's write lock throughout, so its steps are shorter there,
#: and the pace (tasks submitted per second) lower: the run must not be saturated,
#: or its recovery times would measure the backlog instead. On SQLite a saturated
#: run also loses leases to no fault: heartbeats wait for the one write lock past
#: the lease (the diamond's parallel branches made 25 tasks/s too many).
STEP_SECONDS = {"postgres": (0.01, 0.05), "mariadb": (0.01, 0.05), "sqlite": (0.002, 0.01)}
PACE = {"postgres": 50.0, "mariadb": 50.0, "sqlite": 15.0}
#: One task of the waiting workflow for this many of the three-step one; one parent
#: of the fan-out workflow (20 children) for this many; one diamond for this many.
WAITING_SHARE, FAN_OUT_SHARE, DIAMOND_SHARE, TRACED_SHARE = 10, 40, 10, 10
#: One Django task for this many tasks of the three-step workflow.
DJANGO_TASKS_SHARE = 10
#: How late a timer may restart its step: a lease (its first claim lost to a fault),
#: a sweep, and a second for polls and the claim.
LATE_LIMIT = LEASE_SECONDS + SWEEP_INTERVAL + 1.0
SETUP = {"workers": WORKERS, "threads": THREADS, "lease_seconds": LEASE_SECONDS,
         "sweep_interval": SWEEP_INTERVAL}  # fmt: skip

logger = logging.getLogger("chaos")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 tasks instead of 10,000")
    parser.add_argument("--queue", choices=("database", "redis"), default="database")
    parser.add_argument("--db", choices=("sqlite", "postgres", "mariadb"), default="postgres")
    parser.add_argument("--tasks", type=int, help="tasks to submit (default 10,000; quick 1,000)")
    parser.add_argument(
        "--waiting-tasks",
        type=int,
        help=f"tasks of the waiting workflow (default: --tasks / {WAITING_SHARE})",
    )
    parser.add_argument(
        "--fan-out-tasks",
        type=int,
        help=f"parents of the fan-out workflow (default: --tasks / {FAN_OUT_SHARE})",
    )
    parser.add_argument(
        "--diamond-tasks",
        type=int,
        help=f"tasks of the diamond workflow (default: --tasks / {DIAMOND_SHARE})",
    )
    parser.add_argument(
        "--traced-tasks",
        type=int,
        help=f"tasks of the traced workflow (default: --tasks / {TRACED_SHARE})",
    )
    parser.add_argument(
        "--django-tasks",
        type=int,
        help=f"Django tasks to enqueue (default: --tasks / {DJANGO_TASKS_SHARE})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds over which they are submitted (default: 50 tasks/s, 15 on SQLite)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault timeline")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each fault")
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (1_000 if args.quick else 10_000)
    if args.waiting_tasks is None:
        args.waiting_tasks = args.tasks // WAITING_SHARE
    if args.fan_out_tasks is None:
        args.fan_out_tasks = args.tasks // FAN_OUT_SHARE
    if args.diamond_tasks is None:
        args.diamond_tasks = args.tasks // DIAMOND_SHARE
    if args.traced_tasks is None:
        args.traced_tasks = args.tasks // TRACED_SHARE
    if args.django_tasks is None:
        args.django_tasks = args.tasks // DJANGO_TASKS_SHARE
    args.duration = args.duration or args.tasks / PACE[args.db]
    if args.tasks < 1 or args.duration <= 0:
        parser.error("--tasks and --duration must be positive")
    shares = (args.waiting_tasks, args.fan_out_tasks, args.diamond_tasks, args.traced_tasks,
              args.django_tasks)  # fmt: skip
    if min(shares) < 0:
        parser.error("--waiting-tasks, --fan-out-tasks, --diamond-tasks, --traced-tasks and "
                     "--django-tasks must not be negative")  # fmt: skip
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    return args


class Run:
    """One fault-injection run: its servers, its workers and its records."""

    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.directory = directory
        self.rng = random.Random(args.seed)
        self.garbage_rng = random.Random(f"{args.seed}:garbage")  # the injector's thread
        self.log_path = directory / "executions.log"
        self.log_path.touch()
        self.waits_log_path = directory / "waits.log"
        self.waits_log_path.touch()
        self.children_log_path = directory / "children.log"
        self.children_log_path.touch()
        self.diamond_log_path = directory / "diamond.log"
        self.diamond_log_path.touch()
        self.scheduled_log_path = directory / "scheduled.log"
        self.scheduled_log_path.touch()
        self.tasks_log_path = directory / "django-tasks.log"
        self.tasks_log_path.touch()
        self.spans_dir = directory / "spans"
        self.spans_dir.mkdir()
        self.postgres: PostgresServer | None = None
        self.mariadb: MariaDBServer | None = None
        self.redis: RedisServer | None = None
        self.submitted: dict[str, float] = {}

    def environment(self) -> dict[str, str]:
        env = {
            "DJANGO_SETTINGS_MODULE": "benchmarks.faults.settings",
            "CHAOS_DB": self.args.db,
            "CHAOS_QUEUE": self.args.queue,
            "CHAOS_LOG": str(self.log_path),
            "CHAOS_WAITS_LOG": str(self.waits_log_path),
            "CHAOS_CHILDREN_LOG": str(self.children_log_path),
            "CHAOS_DIAMOND_LOG": str(self.diamond_log_path),
            "CHAOS_SCHEDULED_LOG": str(self.scheduled_log_path),
            "CHAOS_TASKS_LOG": str(self.tasks_log_path),
            "CHAOS_LEASE_SECONDS": str(LEASE_SECONDS),
            "CHAOS_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
            "CHAOS_SQLITE_PATH": str(self.directory / "chaos.sqlite3"),
            SPANS_DIR: str(self.spans_dir),
        }
        if self.postgres is not None:
            env["CHAOS_PG_PORT"] = str(self.postgres.port)
        if self.mariadb is not None:
            env["CHAOS_MYSQL_PORT"] = str(self.mariadb.port)
        if self.redis is not None:
            env["CHAOS_REDIS_URL"] = self.redis.url
        return env

    def start_servers(self) -> None:
        if self.args.db == "postgres":
            self.postgres = PostgresServer()
            self.postgres.start()
            self.postgres.create_database("chaos")
        if self.args.db == "mariadb":
            self.mariadb = MariaDBServer()
            self.mariadb.start()
            self.mariadb.create_database("chaos")
        if self.args.queue == "redis":
            self.redis = RedisServer(self.directory, own_process_group=False)  # dies with the run
            self.redis.start()

    def stop_servers(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.destroy(self.directory / "postgres.log" if self.args.keep else None)
        if self.mariadb is not None:
            self.mariadb.destroy(self.directory / "mariadb.log" if self.args.keep else None)

    def actions(self, fleet: Fleet) -> dict[str, Callable[[], int | None]]:
        actions: dict[str, Callable[[], int | None]] = {"kill": lambda: fleet.kill(self.rng)}
        if self.redis is not None:
            actions["redis-restart"] = self.redis.restart
            actions["redis-flush"] = self.redis.flushall
            actions["garbage"] = lambda: garbage(self.redis, self.garbage_rng)
        if self.postgres is not None:
            actions["postgres-restart"] = self.postgres.restart
        if self.mariadb is not None:
            actions["mariadb-restart"] = self.mariadb.restart
        return actions

    def submit_all(self) -> None:
        """Submit the tasks at a steady pace, retrying through outages."""
        from django.db import DatabaseError, close_old_connections, connection

        from salvador_django import submit

        began = time.monotonic()
        pace = self.args.duration / self.args.tasks
        for number in range(self.args.tasks):
            time.sleep(max(0.0, began + number * pace - time.monotonic()))
            work = [round(self.rng.uniform(*STEP_SECONDS[self.args.db]), 4) for _ in range(3)]
            while True:
                try:
                    # The key makes a retry after an unknown outcome return the same task.
                    task = submit("chaos", {"work": work}, idempotency_key=f"chaos-{number}")
                    break
                except DatabaseError:
                    connection.close()
                    time.sleep(0.2)
            self.submitted.setdefault(str(task.id), time.time())
            if number % 100 == 0:
                close_old_connections()

    def wait_until_quiet(self) -> bool:
        """Wait until every task has finished; False if that took too long."""
        from django.db import DatabaseError, connection

        from salvador_django.models import Task
        from salvador_django.status import FINISHED

        deadline = time.monotonic() + QUIESCENCE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if not Task.objects.exclude(status__in=FINISHED).exists():
                    return True
            except DatabaseError:
                connection.close()
            time.sleep(0.2)
        return False


def execute(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    run = Run(args, directory)
    run.start_servers()
    try:
        os.environ.update(run.environment())
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        began = time.time()
        fleet = Fleet(WORKERS, THREADS, env, directory)
        plan = plan_faults(
            run.rng,
            args.duration,
            lease_seconds=LEASE_SECONDS,
            redis=run.redis is not None,
            postgres=run.postgres is not None,
            mariadb=run.mariadb is not None,
        )
        injector = Injector(
            plan,
            run.actions(fleet),
            fleet=fleet,
            pause_seconds=LEASE_SECONDS + 1.5,
            rng=run.rng,
            executions=run.log_path,
        )
        load = WaitingLoad(
            random.Random(f"{args.seed}:waits"),
            args.waiting_tasks,
            max(args.duration - TAIL, args.duration / 2),
        )
        watch: StuckWatch[Any] = StuckWatch()
        fan_out = fan_out_records.FanOutLoad(
            random.Random(f"{args.seed}:fan-out"),
            args.fan_out_tasks,
            args.duration,
            STEP_SECONDS[args.db],
        )
        fan_out_watch = fan_out_records.watch()
        diamonds = DiamondLoad(
            random.Random(f"{args.seed}:diamond"),
            args.diamond_tasks,
            args.duration,
            STEP_SECONDS[args.db],
        )
        traced = TracedLoad(
            random.Random(f"{args.seed}:traced"),
            args.traced_tasks,
            args.duration,
            STEP_SECONDS[args.db],
        )
        enqueue = EnqueueLoad(
            random.Random(f"{args.seed}:django-tasks"),
            args.django_tasks,
            args.duration,
            STEP_SECONDS[args.db],
        )
        striker = Striker(fleet, injector, run.diamond_log_path, args.duration,
                          LEASE_SECONDS + 1.5, random.Random(f"{args.seed}:strikes"))  # fmt: skip
        with fleet.watched():
            injector.start()
            load.start()
            fan_out.start()
            diamonds.start()
            traced.start()
            enqueue.start()
            if args.diamond_tasks:
                striker.start()
            watch.start()
            fan_out_watch.start()
            run.submit_all()
            injector.join()
            load.join()
            fan_out.join()
            diamonds.join()
            traced.join()
            enqueue.join()
            if args.diamond_tasks:
                striker.join()
            pause_schedules()  # their ticks would keep the run from ever being quiet
            quiet = run.wait_until_quiet()
            watch.stop()
            fan_out_watch.stop()
        stop_problems = fleet.shut_down()
        elapsed = time.time() - began
        wait_for_gone(injector.faults, LEASE_SECONDS)  # the killed workers' rows
        traced_data = traced_records(traced, run.spans_dir, injector.faults, fleet)
        traced_verdict = check_traced(traced_data)
        records = three_step_records(
            run.submitted, run.log_path, injector.faults, fleet.dead, fleet.dead_threads()
        )
        records.stop_stalls_all = stalls = args.db == "sqlite"
        records.stalls = late = fleet.stalls()
        verdict = check(records)
        fan_out_data = fan_out_records.fan_out_records(
            fan_out, fan_out_watch, run.children_log_path, injector.faults
        )
        fan_out_data.executions.stop_stalls_all = stalls
        fan_out_data.executions.stalls = late
        fan_out_verdict = check_fan_out(fan_out_data)
        diamond_data = diamond_records(diamonds, striker, run.diamond_log_path, injector.faults)
        diamond_data.executions.stop_stalls_all = stalls
        diamond_data.executions.stalls = late
        diamond_verdict = check_diamonds(diamond_data)
        # The other workflows' claims (the queue's backlog) and steps (workers up).
        runs: list[Execution | ParentStart] = [
            *records.executions,
            *fan_out_data.executions.executions,
            *fan_out_data.starts,
            *diamond_data.executions.executions,
            *read_log(run.scheduled_log_path),
        ]
        claims = [(e.task, e.due, e.claimed) for e in runs]
        wait_data = wait_records(
            load,
            watch,
            run.waits_log_path,
            injector.faults,
            first_claims(claims),
            first_steps(runs),
            late_limit=LATE_LIMIT,
            stop_stalls_all=args.db == "sqlite",
        )
        waits = check_waits(wait_data)
        scheduled_data = scheduled_records(
            run.scheduled_log_path, injector.faults, first_steps(runs)
        )
        scheduled_data.executions.stop_stalls_all = stalls
        scheduled_data.executions.stalls = late
        scheduled_verdict = check_scheduled(scheduled_data)
        verdict.problems += waits.problems
        verdict.problems += [f"fan-out: {problem}" for problem in fan_out_verdict.problems]
        verdict.problems += [f"diamond: {problem}" for problem in diamond_verdict.problems]
        verdict.problems += [f"scheduled: {problem}" for problem in scheduled_verdict.problems]
        verdict.problems += [f"traced: {problem}" for problem in traced_verdict.problems]
        tasks_data = enqueued_records(enqueue, run.tasks_log_path, injector.faults)
        tasks_data.executions.stop_stalls_all = stalls
        tasks_data.executions.stalls = late
        tasks_verdict = check_enqueued(tasks_data)
        verdict.problems += [f"Django tasks: {problem}" for problem in tasks_verdict.problems]
        failures = (("the waiting load", load.errors), ("the fan-out load", fan_out.errors),
                    ("the diamond load", diamonds.errors), ("the traced load", traced.errors),
                    ("the Django tasks' load", enqueue.errors),
                    ("the faults aimed at parallel branches", striker.errors))  # fmt: skip
        for what, errors in failures:
            for error in errors:
                verdict.problem(f"{what} failed: {error}")
        if not quiet:
            verdict.problem(f"tasks unfinished {QUIESCENCE_TIMEOUT:.0f}s after the last fault")
        for problem in stop_problems:
            verdict.problem(problem)
        statuses = Counter(records.statuses.values())
        result = summary(args, SETUP, injector.faults, verdict, statuses, fleet, elapsed)
        result["began"] = began
        result["waits"] = waits_summary(load, watch, wait_data, waits, LATE_LIMIT)
        result["fan_out"] = fan_out_summary(fan_out, fan_out_watch, fan_out_data, fan_out_verdict)
        result["diamond"] = diamond_summary(diamonds, striker, diamond_data, diamond_verdict)
        result["scheduled"] = scheduled_summary(scheduled_data, scheduled_verdict)
        result["traced"] = traced_summary(traced_data, traced_verdict)
        result["django_tasks"] = enqueued_summary(enqueue, tasks_data, tasks_verdict)
        result["timeline"] = timeline(verdict, began)
        return result
    finally:
        run.stop_servers()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(message)s",
    )
    directory = Path(tempfile.mkdtemp(prefix="salvador-chaos-"))
    try:
        result = execute(args, directory)
    finally:
        if args.keep:
            print(f"chaos: records kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    print_summary(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
