"""The schedules section of ``benchmarks/run.py``: what ticking costs, how fast, how late.

Run by the per-backend measuring process (:class:`benchmarks.measure.Measurement`), with
each ``--schedules`` number S of schedules in the table. They are declared in code, as
users declare them: ``bench-tick`` (``benchmarks/workflows.py``) with S cron expressions
that tick only in one month, five to six months away (none is due during the run), in
four time zones, and ``EVERY`` schedules every second, paused but for the lateness run.
Their rows are bulk-inserted as the workers' first sync would write them (a sync then
changes nothing, which is checked); the time to declare them and to sync them unchanged
(what each worker does when it starts) is kept.

- Tick rounds: ``tick_schedules()`` in this process, ``ROUNDS`` times with nothing due,
  and with each ``--schedule-due`` number N of the crons due (their ``next_run_at`` moved
  a second back): statements per round (django's ``CaptureQueriesContext``, in a run of
  its own), among them the lookups of the due schedules (one per batch of up to
  ``TICK_BATCH``, whatever the table holds), whether the database's plan for the lookup
  reads the index ``salvador_schedule_due``, and the time of a round (median; the rounds
  with N due ``--repeat`` times). The timer thread's round when nothing is due
  (``tick_due()``: its statements and time) beside it.
- Ticks per second: N / the round's time, each tick one task submitted. Beside it, in the
  same run: the same number of tasks inserted by a bare ``INSERT`` each through the raw
  driver in autocommit (a tick is one transaction), and ``submit()`` each in its own
  transaction.
- Lateness (at the largest S): the ``EVERY`` schedules resumed and ticked by one
  long-running ``runworkflows`` (its timer thread) for ``--schedule-seconds``: for each
  tick, its task's ``created_at`` (the database's clock) and its step's start
  (``time.time()``, the database's clock offset corrected) after its due time, p50/p99/max,
  and the due seconds without a task.
"""

from __future__ import annotations

import json
import re
import statistics
import time
import uuid
from collections import Counter, deque
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from benchmarks import history, waits
from benchmarks.servers import log, redis_delete_prefix, summary_ms

if TYPE_CHECKING:
    from benchmarks.measure import Measurement

TICK_WORKFLOW = "bench-tick"
#: What the workers of the lateness run declare ("<crons>:<month>:<every>"; see
#: ``benchmarks.workflows.bench_tick_schedules``).
TICK_SCHEDULES = "SALVADOR_BENCH_SCHEDULES"
ROUNDS = 30  # rounds with nothing due, per table size
EVERY = 5  # schedules every second, for the lateness run
WARMUP_SECONDS = 2.0  # the lateness run's first ticks, left out
INDEX = "salvador_schedule_due"
CAPTURE_LIMIT = 100_000
_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+["`]?(\w+)["`]?', re.I)


def measure(m: Measurement) -> dict[str, Any]:
    """Every figure of the schedules section for ``m``'s backend."""
    from salvador_django.scheduling import TICK_BATCH

    month = (date.today().month + 5) % 12 + 1
    sizes = sorted(m.schedule_sizes)
    out: dict[str, Any] = {"every": EVERY, "month": month, "tick_batch": TICK_BATCH, "sizes": {}}
    try:
        for size in sizes:
            out["sizes"][str(size)] = at_size(m, size, month, top=size == sizes[-1])
        if m.schedule_seconds:
            out["lateness"] = lateness(m, f"{sizes[-1]}:{month}:{EVERY}", m.schedule_seconds)
    finally:
        _clear()
    return out


def _clear() -> None:
    from benchmarks.workflows import define_tick_workflow
    from salvador_django.models import Schedule
    from salvador_django.registry import registry

    history.delete_workflow_tasks(TICK_WORKFLOW)
    Schedule.objects.filter(workflow=TICK_WORKFLOW).delete()
    registry.unregister(TICK_WORKFLOW)
    define_tick_workflow()


def declare(spec: str) -> float:
    """Register ``bench-tick`` with the schedules of ``spec`` here; the seconds taken."""
    from benchmarks.workflows import bench_tick_schedules, define_tick_workflow
    from salvador_django.registry import registry

    registry.unregister(TICK_WORKFLOW)
    began = time.perf_counter()
    define_tick_workflow(bench_tick_schedules(spec))
    return time.perf_counter() - began


def load(spec: str) -> float:
    """Write ``spec``'s schedules to an empty table as a sync would (the ones every
    second paused), in batches; the seconds taken."""
    from django.utils import timezone

    from benchmarks.workflows import bench_tick_schedules
    from salvador_django.models import Schedule
    from salvador_django.scheduling import code_fields

    Schedule.objects.filter(workflow=TICK_WORKFLOW).delete()
    now = timezone.now()
    rows = [
        Schedule(name=s.name or "", next_run_at=s.next_tick(now), paused=s.every is not None,
                 **code_fields(TICK_WORKFLOW, s))
        for s in bench_tick_schedules(spec)
    ]  # fmt: skip
    began = time.perf_counter()
    Schedule.objects.bulk_create(rows, batch_size=1000)
    history.settle()
    return time.perf_counter() - began


def captured(call: Any) -> tuple[Any, list[str]]:
    """``call()``'s result and the statements it ran on the default connection."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    kept = connection.queries_log
    connection.queries_log = deque(maxlen=CAPTURE_LIMIT)  # Django keeps the last 9,000
    try:
        with CaptureQueriesContext(connection) as queries:
            result = call()
        statements = [q["sql"] for q in queries.captured_queries]
    finally:
        connection.queries_log = kept
    if len(statements) >= CAPTURE_LIMIT:
        raise RuntimeError(f"schedules: more than {CAPTURE_LIMIT} statements to count")
    return result, statements


def is_lookup(sql: str) -> bool:
    """Whether ``sql`` is the lookup of the due schedules."""
    head = sql.lstrip().upper()
    return head.startswith("SELECT") and "SALVADOR_SCHEDULE" in head and "NEXT_RUN_AT" in head


def kinds(statements: list[str]) -> dict[str, int]:
    """Statements by verb and table ("UPDATE salvador_schedule": 2)."""
    counted: Counter[str] = Counter()
    for sql in statements:
        verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
        table = _TABLE.search(sql)
        counted[f"{verb} {table.group(1)}" if table and verb != "SAVEPOINT" else verb] += 1
    return dict(counted)


def plan(sql: str) -> str:
    """The database's plan for ``sql``."""
    from django.db import connection

    explain = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        cursor.execute(explain + sql)
        return " | ".join(" ".join(str(v) for v in row) for row in cursor.fetchall())


def _timed(call: Any, times: int) -> float:
    """The median seconds of ``call()`` over ``times`` runs."""
    seconds = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def at_size(m: Measurement, size: int, month: int, top: bool) -> dict[str, Any]:
    """Round costs with ``size`` crons in the table (and, at the largest, ticks/s)."""
    from salvador_django.scheduling import sync_schedules, tick_due, tick_schedules

    spec = f"{size}:{month}:{EVERY}"
    out: dict[str, Any] = {"declare_seconds": declare(spec), "load_seconds": load(spec)}
    began = time.perf_counter()
    synced = sync_schedules()
    out["sync_seconds"] = time.perf_counter() - began
    if synced.added or synced.changed or synced.disabled:
        m.result["errors"].append(f"schedules: a sync after the load changed {synced}")
    history.analyze()
    submitted, statements = captured(tick_schedules)
    lookups = [sql for sql in statements if is_lookup(sql)]
    out["idle"] = {
        "statements": len(statements),
        "lookups": len(lookups),
        "round_ms": 1000 * _timed(tick_schedules, ROUNDS),
        "submitted": len(submitted),
    }
    try:
        out["idle"]["plan"] = plan(lookups[0]) if lookups else None
        out["idle"]["indexed"] = INDEX in (out["idle"]["plan"] or "")
    except Exception as exc:  # a plan is a figure: the section goes on without it
        out["idle"]["plan_error"] = repr(exc)
    _, timer = captured(lambda: tick_due("default"))
    out["timer_round"] = {"statements": len(timer), "ms": 1000 * _timed(
        lambda: tick_due("default"), ROUNDS)}  # fmt: skip
    out["due"] = {
        str(n): due_rounds(m, n, m.repeat if top else 1) for n in m.schedule_due if n <= size
    }
    if top and out["due"]:
        n = max(int(k) for k in out["due"])
        out["baseline"] = baseline(m, n)
        ticks = out["due"][str(n)]["ticks_per_second"]
        out["baseline"]["ticks_over_raw"] = ticks / out["baseline"]["raw_inserts_per_second"]
        out["baseline"]["ticks_over_submit"] = ticks / out["baseline"]["submits_per_second"]
    log(
        m.backend,
        f"schedules: {size:,} in the table: a round with none due runs "
        f"{out['idle']['statements']} statement(s) ({out['idle']['lookups']} lookup, index "
        f"{'used' if out['idle'].get('indexed') else 'NOT used'}), "
        f"{out['idle']['round_ms']:.2f} ms; declared in {out['declare_seconds']:.2f}s, "
        f"synced unchanged in {out['sync_seconds']:.2f}s",
    )
    return out


def make_due(n: int) -> None:
    """Move the next run of ``n`` of the crons a second into the past."""
    from django.utils import timezone

    from salvador_django.models import Schedule

    crons = Schedule.objects.filter(workflow=TICK_WORKFLOW, every__isnull=True)
    ids = list(crons.order_by("pk").values_list("pk", flat=True)[:n])
    Schedule.objects.filter(pk__in=ids).update(next_run_at=timezone.now() - timedelta(seconds=1))


def due_rounds(m: Measurement, n: int, runs: int) -> dict[str, Any]:
    """Tick ``n`` due crons: statements (one run), then ``runs`` timed runs; median."""
    from salvador_django.scheduling import tick_schedules

    make_due(n)
    submitted, statements = captured(tick_schedules)
    history.delete_workflow_tasks(TICK_WORKFLOW)
    lookups = sum(is_lookup(sql) for sql in statements)
    seconds = []
    for _ in range(runs):
        make_due(n)
        began = time.perf_counter()
        ticked = tick_schedules()
        seconds.append(time.perf_counter() - began)
        history.delete_workflow_tasks(TICK_WORKFLOW)
        if len(ticked) != n:
            m.result["errors"].append(f"schedules: {n} due, {len(ticked)} tasks submitted")
    median = statistics.median(seconds)
    out = {
        "ticked": len(submitted),
        "statements": len(statements),
        "lookups": lookups,
        "statements_per_tick": (len(statements) - lookups) / n,
        "kinds": kinds(statements),
        "seconds": median,
        "seconds_runs": seconds,
        "ticks_per_second": n / median,
        "ms_per_tick": 1000 * median / n,
    }
    log(
        m.backend,
        f"schedules: {n:,} due: {out['ticks_per_second']:.0f} ticks/s, {lookups} lookup(s), "
        f"{out['statements_per_tick']:.1f} statements per tick",
    )
    return out


def baseline(m: Measurement, n: int) -> dict[str, Any]:
    """``n`` tasks like the ticks': a bare INSERT each (raw driver, autocommit), and
    ``submit()`` each in its own transaction; per second."""
    from django.db import transaction

    from salvador_django import submit
    from salvador_django.models import Task

    table = Task._meta.db_table
    cast, mark = ("::jsonb", "%s") if m.postgres else ("", "%s") if m.mariadb else ("", "?")
    columns = ("id, workflow, body, state, meta, status, step, step_name, error, attempt, "
               "recoveries, priority, idempotency_key")  # fmt: skip
    values = ", ".join([mark, mark, f"{mark}{cast}", f"{mark}{cast}", f"{mark}{cast}",
                        *[mark] * 8])  # fmt: skip
    sql = f"INSERT INTO {table} ({columns}) VALUES ({values})"
    now = datetime.now(UTC)
    conn = m._raw_connect()
    try:
        began = time.perf_counter()
        for i in range(n):
            key = f"schedule:bench-raw-{i}:{now.isoformat()}"
            meta = json.dumps({"scheduled_for": now.isoformat()})
            task_id = str(uuid.uuid4()) if m.postgres else uuid.uuid4().hex
            conn.execute(sql, (task_id, TICK_WORKFLOW, "null", "{}", meta, "pending", 0,
                               "start", "", 0, 0, 0, key))  # fmt: skip
        raw = time.perf_counter() - began
    finally:
        conn.close()
    history.delete_workflow_tasks(TICK_WORKFLOW)
    began = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            submit(TICK_WORKFLOW, None, meta={"scheduled_for": now.isoformat()},
                   idempotency_key=f"schedule:bench-submit-{i}:{now.isoformat()}")  # fmt: skip
    submitted = time.perf_counter() - began
    history.delete_workflow_tasks(TICK_WORKFLOW)
    return {"tasks": n, "raw_inserts_per_second": n / raw, "submits_per_second": n / submitted}


def lateness(m: Measurement, spec: str, seconds: float) -> dict[str, Any]:
    """The schedules every second, ticked by a long-running worker for ``seconds``."""
    from salvador_django.conf import get_settings
    from salvador_django.models import Schedule, Task
    from salvador_django.scheduling import pause_schedule, resume_schedule

    every = list(Schedule.objects.filter(workflow=TICK_WORKFLOW, every__isnull=False))
    tasks = Task.objects.filter(workflow=TICK_WORKFLOW)
    if m.redis:  # the rounds above announced their tasks, deleted since: a worker would
        for kind in ("queue", "bell", "delayed"):  # pop them all before the new ones
            redis_delete_prefix(f"{m.redis_prefix}{kind}:{TICK_WORKFLOW}")
    m.env[TICK_SCHEDULES] = spec
    try:
        for row in every:
            resume_schedule(row)
        spawned = time.time()
        with m.running_worker("schedules-lateness"):
            while not tasks.exists():
                if time.time() - spawned > 120:
                    raise RuntimeError("schedules: the worker ticked nothing in 120 s")
                time.sleep(0.05)
            first = time.time() - spawned
            time.sleep(seconds + WARMUP_SECONDS)
            for row in every:
                pause_schedule(row)
            waits._wait_until_all(list(tasks.values_list("pk", flat=True)), "completed", 60)
    finally:
        del m.env[TICK_SCHEDULES]
    offset, error = waits.clock_offset()
    ticks: list[tuple[str, datetime, datetime, float]] = [
        (meta["schedule"], datetime.fromisoformat(meta["scheduled_for"]), created, state["t1"])
        for meta, created, state in tasks.values_list("meta", "created_at", "state")
    ]
    start = min(t[1] for t in ticks) + timedelta(seconds=WARMUP_SECONDS)
    kept = [t for t in ticks if t[1] >= start]
    submitted = [(created - due).total_seconds() for _, due, created, _ in kept]
    started = [t1 - due.timestamp() + offset for _, due, _, t1 in kept]
    expected = EVERY * (round((max(t[1] for t in ticks) - start).total_seconds()) + 1)
    twice = len(ticks) - len({(name, due) for name, due, _, _ in ticks})
    if twice:
        m.result["errors"].append(f"schedules: {twice} tick(s) with more than one task")
    history.delete_workflow_tasks(TICK_WORKFLOW)
    out = {
        "schedules": EVERY,
        "seconds": seconds,
        "poll_interval": float(get_settings().POLL_INTERVAL),
        "first_tick_after_spawn_seconds": first,
        "submitted_ms": {**summary_ms(submitted), "min": 1000 * min(submitted)},
        "started_ms": {**summary_ms(started), "min": 1000 * min(started)},
        "samples_ms": [  # each tick: its due time from the first's (s), submitted, started
            [round((due - start).total_seconds()), round(1000 * a, 1), round(1000 * b, 1)]
            for (_, due, _, _), a, b in zip(kept, submitted, started, strict=True)
        ],
        "ticks": len(kept),
        "missed": expected - len(kept),
        "ticked_twice": twice,
        "clock_offset_ms": 1000 * offset,
        "clock_offset_uncertainty_ms": 1000 * error,
    }
    s, st = summary_ms(submitted), summary_ms(started)
    log(
        m.backend,
        f"schedules: {EVERY} every second for {seconds:g}s, {len(kept)} ticks: submitted "
        f"p50 {s['p50']:.1f} ms, p99 {s['p99']:.1f} ms; started p50 {st['p50']:.1f} ms, p99 "
        f"{st['p99']:.1f} ms; first tick {first:.1f}s after the worker's spawn",
    )
    return out
