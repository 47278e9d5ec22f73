"""Fault injection: crashes, pauses, broker loss and database restarts lose nothing.

    python benchmarks/chaos.py [--quick] [--queue database|redis] [--db sqlite|postgres]

Submits N tasks (quick: 1,000; full: 10,000) of a three-step workflow at a steady
pace while 3 ``runworkflows`` processes of 4 threads run them. Meanwhile it SIGKILLs a
random worker every ~2 s (and starts another), SIGSTOPs one for longer than the lease
every ~10 s (then SIGCONTs it), restarts and flushes Redis and pushes junk into every
key of the queue (Redis queue), and restarts PostgreSQL once (PostgreSQL runs). Runs
with PostgreSQL or Redis start their own server on a free port, so the machine's
shared services are never touched.

Alongside, it submits tasks of a waiting workflow (quick: 100; full: 1,000), whose
steps wait for signals (one with a timeout) and sleep, sends their signals at random
moments (some twice, with the same idempotency key), and pauses and resumes some of
them (see ``benchmarks/faults/waiting_load``).

When every task has finished, it checks the records (see ``benchmarks/faults/checks``
and ``benchmarks/faults/waiting_checks``), prints a summary and exits 1 if any check
failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
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

from benchmarks.faults.checks import (
    Effect,
    Execution,
    Fault,
    Records,
    Verdict,
    check,
)
from benchmarks.faults.injection import Fleet, Injector, plan_faults, push_garbage
from benchmarks.faults.servers import PostgresServer, RedisServer
from benchmarks.faults.waiting_checks import WaitRecords, WaitVerdict, check_waits, first_claims
from benchmarks.faults.waiting_load import TAIL, WaitingLoad
from benchmarks.faults.waiting_records import StuckWatch, wait_records

REPO = Path(__file__).resolve().parent.parent
WORKERS, THREADS = 3, 4
LEASE_SECONDS, SWEEP_INTERVAL = 3.0, 1.0
QUIESCENCE_TIMEOUT = 180.0
#: How long each step works (a sleep): long enough that a paused worker is likely to
#: be inside a step, the case where a late write could happen. On SQLite an atomic
#: step holds the database's write lock throughout, so its steps are shorter there,
#: and the pace (tasks submitted per second) lower: the run must not be saturated,
#: or its recovery times would measure the backlog instead.
STEP_SECONDS = {"postgres": (0.01, 0.05), "sqlite": (0.002, 0.01)}
PACE = {"postgres": 50.0, "sqlite": 25.0}
#: One task of the waiting workflow for this many of the three-step one.
WAITING_SHARE = 10
#: How late a timer may restart its step: a lease (its first claim lost to a fault),
#: a sweep, and a second for polls and the claim.
LATE_LIMIT = LEASE_SECONDS + SWEEP_INTERVAL + 1.0

logger = logging.getLogger("chaos")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 tasks instead of 10,000")
    parser.add_argument("--queue", choices=("database", "redis"), default="database")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--tasks", type=int, help="tasks to submit (default 10,000; quick 1,000)")
    parser.add_argument(
        "--waiting-tasks",
        type=int,
        help=f"tasks of the waiting workflow (default: --tasks / {WAITING_SHARE})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds over which they are submitted (default: 50 tasks/s, 25 on SQLite)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault timeline")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each fault")
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (1_000 if args.quick else 10_000)
    if args.waiting_tasks is None:
        args.waiting_tasks = args.tasks // WAITING_SHARE
    args.duration = args.duration or args.tasks / PACE[args.db]
    if args.tasks < 1 or args.duration <= 0 or args.waiting_tasks < 0:
        parser.error("--tasks and --duration must be positive, --waiting-tasks not negative")
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
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.submitted: dict[str, float] = {}

    def environment(self) -> dict[str, str]:
        env = {
            "DJANGO_SETTINGS_MODULE": "benchmarks.faults.settings",
            "CHAOS_DB": self.args.db,
            "CHAOS_QUEUE": self.args.queue,
            "CHAOS_LOG": str(self.log_path),
            "CHAOS_WAITS_LOG": str(self.waits_log_path),
            "CHAOS_LEASE_SECONDS": str(LEASE_SECONDS),
            "CHAOS_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
            "CHAOS_SQLITE_PATH": str(self.directory / "chaos.sqlite3"),
        }
        if self.postgres is not None:
            env["CHAOS_PG_PORT"] = str(self.postgres.port)
        if self.redis is not None:
            env["CHAOS_REDIS_URL"] = self.redis.url
        return env

    def start_servers(self) -> None:
        if self.args.db == "postgres":
            self.postgres = PostgresServer()
            self.postgres.start()
            self.postgres.create_database("chaos")
        if self.args.queue == "redis":
            self.redis = RedisServer(self.directory, own_process_group=False)  # dies with the run
            self.redis.start()

    def stop_servers(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.destroy()

    def actions(self, fleet: Fleet) -> dict[str, Callable[[], int | None]]:
        actions: dict[str, Callable[[], int | None]] = {"kill": lambda: fleet.kill(self.rng)}
        if self.redis is not None:
            actions["redis-restart"] = self.redis.restart
            actions["redis-flush"] = self.redis.flushall
            actions["garbage"] = self.push_garbage
        if self.postgres is not None:
            actions["postgres-restart"] = self.postgres.restart
        return actions

    def push_garbage(self) -> None:
        """Write junk into every key of the run's Redis queue."""
        import redis

        from salvador_django.conf import get_settings

        assert self.redis is not None
        prefix = get_settings().KEY_PREFIX
        with redis.Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=5) as client:
            written = push_garbage(client, prefix, ["chaos"], self.garbage_rng)
        logger.info("chaos: %d junk items written under %r", written, prefix)

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

    def records(self, faults: list[Fault], fleet: Fleet) -> Records:
        from benchmarks.faults.models import Effect as EffectRow
        from salvador_django.models import StepRun, Task

        statuses, errors, events = {}, {}, {}
        for task_id, status, error, finished in Task.objects.filter(workflow="chaos").values_list(
            "id", "status", "error", "finished_at"
        ):
            key = str(task_id)
            statuses[key] = status
            if status != "completed":
                errors[key] = error
            events[key] = [self.submitted[key]] if key in self.submitted else []
            if finished is not None:
                events[key].append(finished.timestamp())
        executions = [
            Execution(**json.loads(line))
            for line in self.log_path.read_text().splitlines()
            if line.strip()
        ]
        effects = [
            Effect(str(task), step, token, pid, at)
            for task, step, token, pid, at in EffectRow.objects.values_list(
                "task_id", "step", "token", "pid", "at"
            )
        ]
        failed = {
            (str(task), index, attempt)
            for task, index, attempt in StepRun.objects.filter(status="failed").values_list(
                "task_id", "index", "attempt"
            )
        }
        return Records(
            statuses,
            errors,
            events,
            executions,
            effects,
            failed,
            faults,
            fleet.dead,
            fleet.dead_threads(),
        )


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
        watch = StuckWatch()
        with fleet.watched():
            injector.start()
            load.start()
            watch.start()
            run.submit_all()
            injector.join()
            load.join()
            quiet = run.wait_until_quiet()
            watch.stop()
        stop_problems = fleet.shut_down()
        elapsed = time.time() - began
        records = run.records(injector.faults, fleet)
        verdict = check(records)
        wait_data = wait_records(
            load,
            watch,
            run.waits_log_path,
            injector.faults,
            claims(records),
            first_steps(records),
            late_limit=LATE_LIMIT,
            stop_stalls_all=args.db == "sqlite",
        )
        waits = check_waits(wait_data)
        verdict.problems += waits.problems
        for error in load.errors:
            verdict.problem(f"the waiting load failed: {error}")
        if not quiet:
            verdict.problem(f"tasks unfinished {QUIESCENCE_TIMEOUT:.0f}s after the last fault")
        for problem in stop_problems:
            verdict.problem(problem)
        statuses = Counter(records.statuses.values())
        result = summary(args, injector.faults, verdict, statuses, fleet, elapsed)
        result["began"] = began
        result["waits"] = waits_summary(load, watch, wait_data, waits)
        result["timeline"] = [
            {
                "kind": fault.kind,
                "at": round(fault.start - began, 2),
                "lasted": round(fault.end - fault.start, 2),
                "pid": fault.pid,
                "recovery": round(seconds, 2),
            }
            for fault, seconds in verdict.recoveries
        ]
        return result
    finally:
        run.stop_servers()


def claims(records: Records) -> list[tuple[float, float]]:
    """When each task of the three-step workflow was due, and first claimed then."""
    return first_claims((e.task, e.due, e.claimed) for e in records.executions)


def first_steps(records: Records) -> dict[int, float]:
    """When each worker started its first step of the three-step workflow."""
    first: dict[int, float] = {}
    for execution in records.executions:
        first[execution.pid] = min(first.get(execution.pid, math.inf), execution.t)
    return first


def summary(
    args: argparse.Namespace,
    faults: list[Fault],
    verdict: Verdict,
    statuses: Counter[str],
    fleet: Fleet,
    elapsed: float,
) -> dict[str, Any]:
    return {
        "command": "python benchmarks/chaos.py " + " ".join(sys.argv[1:]),
        "queue": args.queue,
        "db": args.db,
        "seed": args.seed,
        "tasks": args.tasks,
        "workers": WORKERS,
        "threads": THREADS,
        "lease_seconds": LEASE_SECONDS,
        "sweep_interval": SWEEP_INTERVAL,
        "faults": dict(Counter(f.kind for f in faults)),
        "duplicates": dict(verdict.duplicates),
        "after_lease_loss": dict(verdict.after_lease_loss),
        "recovery_seconds": {k: round(v, 2) for k, v in verdict.recovery.items()},
        "workers_started": fleet.started,
        "elapsed_seconds": round(elapsed, 1),
        "statuses": dict(statuses),
        "problems": verdict.problems,
        "passed": verdict.passed,
    }


def waits_summary(
    load: WaitingLoad, watch: StuckWatch, records: WaitRecords, verdict: WaitVerdict
) -> dict[str, Any]:
    """The waiting workflow's figures."""
    outcomes = {("sent", False): "first", ("sent", True): "again, ignored",
                ("refused", True): "again, refused (task finished)"}  # fmt: skip
    sent = Counter(outcomes.get((s.outcome, s.again), s.outcome) for s in load.sent)
    return {
        "tasks": len(load.ids),
        "sends": dict(sent),
        "signals": dict(verdict.moments),
        "cues_and_pauses": dict(load.outcomes),
        "timers": verdict.timers(),
        "late_limit": LATE_LIMIT,
        "timers_over_the_limit": dict(verdict.late),
        "samples": watch.samples,
        "load_behind_seconds": round(load.behind, 2),
        "stuck": len(watch.seen),
        "failed_attempts": dict(Counter(failure.error for failure in records.failures)),
    }


def print_summary(result: dict[str, Any]) -> None:
    faults = result["faults"]
    duplicates = result["duplicates"]
    late = result["after_lease_loss"]
    recovery = result["recovery_seconds"]
    print(
        f"chaos: {result['tasks']:,} tasks, queue {result['queue']}, db {result['db']}, "
        f"{result['workers']} workers x {result['threads']} threads, "
        f"lease {result['lease_seconds']:g}s, sweep {result['sweep_interval']:g}s, "
        f"seed {result['seed']}"
    )
    print(f"  faults injected: {sum(faults.values())} ({_counts(faults)})")
    print(f"  duplicate step executions: {sum(duplicates.values())} ({_counts(duplicates)})")
    print(
        f"  steps started after their lease was lost (writes refused): "
        f"{sum(late.values())} ({_counts(late)})"
    )
    longest = max(recovery.values(), default=0.0)
    print(f"  max time from fault to recovery: {longest:.1f}s ({_counts(recovery, 's')})")
    waits = result["waits"]
    timers = waits["timers"]
    print(
        f"  waiting workflow: {waits['tasks']} tasks; signals consumed: "
        f"{sum(waits['signals'].values())} ({_counts(waits['signals'])})"
    )
    print(f"  signal sends: {_counts(waits['sends'])}")
    print(
        f"  timers: {timers['count']}; fired after due: {_spread(timers['fired'])}; "
        f"step restarted after due: {_spread(timers['restarted'])}"
    )
    print(
        f"  timers over the {waits['late_limit']:g}s limit: "
        f"{_counts(waits['timers_over_the_limit'])}; "
        f"left waiting with their signal there: {waits['stuck']} in {waits['samples']} samples"
    )
    print(f"  cues and pauses: {_counts(waits['cues_and_pauses'])}")
    print(f"  failed step attempts: {_counts(waits['failed_attempts'])}")
    print(f"  the waiting load ran up to {waits['load_behind_seconds']:g}s behind its plan")
    print(f"  workers started: {result['workers_started']}; elapsed {result['elapsed_seconds']}s")
    for problem in result["problems"]:
        print(f"  FAIL: {problem}")
    print("PASS" if result["passed"] else "FAIL")


def _spread(seconds: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:g}s" for name, value in seconds.items()) or "none"


def _counts(counts: dict[str, Any], unit: str = "") -> str:
    return ", ".join(f"{kind} {value}{unit}" for kind, value in sorted(counts.items())) or "none"


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
