"""The waits section of ``benchmarks/run.py``: signals, timers, and what waiting costs.

Run by the per-backend measuring process (:class:`benchmarks.measure.Measurement`),
against a long-running ``runworkflows`` worker subprocess:

- Signal round trip: tasks of ``bench-signal`` wait for ``go``; one at a time,
  ``send_signal()`` commits and the step's own ``time.time()`` at the start of its
  next run (the woken one) is compared with the time taken just before the call.
  The raw baseline: a committed ``pg_notify`` to a ``LISTEN``ing psycopg connection
  (PostgreSQL), an LPUSH to a client blocked in BRPOP (Redis); none on SQLite or on
  MariaDB's database queue, whose workers poll.
- Timer lateness: tasks of ``bench-sleep`` sleep 0.2 to 1 s, submitted about 20 a
  second; lateness is the woken step's start (process clock) minus its ``Wait``'s
  ``until`` (the database's clock), corrected by the offset of the two clocks
  measured in the same run (on one machine both read the same system clock).
- Waiting tasks: with each ``--waiting`` number of waiting tasks bulk-inserted (half
  of them with a timer between 1 and 25 hours away), the claim's latency (as the
  scale section measures it), what an idle worker does (SQL statements counted in
  an in-process worker, whose sweep runs every second; on PostgreSQL the database's
  commits, rows read and pages touched meanwhile) and a worker subprocess's RSS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from benchmarks import cpu, history
from benchmarks.servers import PG_DB, log, pg_connect, redis_connect, summary_ms

if TYPE_CHECKING:
    from benchmarks.measure import Measurement

SIGNAL_WORKFLOW = "bench-signal"
SLEEP_WORKFLOW = "bench-sleep"
SIGNAL = "go"
WARMUP = 5  # round trips and sleeps run first and left out of the figures
SLEEP_SECONDS = (0.2, 1.0)
SUBMIT_GAP_SECONDS = 0.05  # the mean pause between two sleeping tasks' submissions
TIMER_HOURS = (1, 25)  # seeded timers: none fires during the run
SEED_BATCH = 10_000
IDLE_WARMUP_SECONDS = 2.5  # past the flush of its start-up's statistics (PostgreSQL: 1 s)
IDLE_SECONDS = 3.0
IDLE_SWEEP_INTERVAL = 1.0  # the in-process worker sweeps within the window
_PG_COUNTERS = ("xact_commit", "tup_returned", "blks_hit", "blks_read")


def measure(m: Measurement) -> dict[str, Any]:
    """Every figure of the waits section for ``m``'s backend."""
    out: dict[str, Any] = {}
    if m.wait_samples:
        out["raw_wakeup_ms"] = raw_wakeup(m, m.wait_samples)
        out["signal"] = signal_round_trips(m, m.wait_samples)
        out["timers"] = timer_lateness(m, m.wait_samples)
    if m.waiting_levels:
        out["waiting"] = waiting_cost(m, m.waiting_levels)
    return out


# --------------------------------------------------------------------- raw baseline


def raw_wakeup(m: Measurement, samples: int) -> dict[str, float] | None:
    """The floor of a wake-up on this backend, p50/p95/p99 in ms; None where workers poll.

    PostgreSQL: ``SELECT pg_notify(...)`` in autocommit (its commit sends it) until
    a psycopg connection in ``LISTEN`` receives it. Redis: an LPUSH until a client
    blocked in BRPOP on that list returns.
    """
    if m.redis:
        return _raw_redis_wakeup(m, samples)
    if m.postgres:
        return _raw_notify_wakeup(samples)
    return None


def _time_wakeups(
    samples: int, send: Callable[[str], None], receive: Callable[[Callable[[str], None]], None]
) -> dict[str, float]:
    """Time ``send(payload)`` until ``receive`` (running in a thread) reports the payload."""
    received: dict[str, float] = {}
    arrived = threading.Event()

    def got(payload: str) -> None:
        received[payload] = time.time()
        arrived.set()

    listener = threading.Thread(target=receive, args=(got,), name="bench-raw-listener")
    listener.start()
    rng = random.Random(0)
    durations = []
    try:
        time.sleep(0.2)  # the listener is blocked in its read
        for i in range(WARMUP + samples):
            time.sleep(rng.uniform(0, 0.01))
            arrived.clear()
            began = time.time()
            send(str(i))
            if not arrived.wait(5):
                raise RuntimeError("raw wake-up: nothing received within 5 s")
            if i >= WARMUP:
                durations.append(received[str(i)] - began)
    finally:
        send("stop")
        listener.join(10)
    return summary_ms(durations)


def _raw_notify_wakeup(samples: int) -> dict[str, float]:
    channel = "salvador_bench_raw"
    listening = pg_connect(PG_DB)
    sending = pg_connect(PG_DB)
    listening.execute(f"LISTEN {channel}")

    def receive(got: Callable[[str], None]) -> None:
        for notify in listening.notifies(timeout=30):
            if notify.payload == "stop":
                return
            got(notify.payload)

    try:
        return _time_wakeups(
            samples,
            lambda payload: sending.execute("SELECT pg_notify(%s, %s)", (channel, payload)),
            receive,
        )
    finally:
        sending.close()
        listening.close()


def _raw_redis_wakeup(m: Measurement, samples: int) -> dict[str, float]:
    key = f"{m.redis_prefix}bench-raw-wakeup"
    pushing, blocked = redis_connect(), redis_connect()
    pushing.delete(key)

    def receive(got: Callable[[str], None]) -> None:
        while True:
            popped = blocked.brpop([key], timeout=30)
            if popped is None or popped[1] == b"stop":
                return
            got(popped[1].decode())

    try:
        return _time_wakeups(samples, lambda payload: pushing.lpush(key, payload), receive)
    finally:
        pushing.delete(key)
        pushing.close()
        blocked.close()


# --------------------------------------------------------------------- signals


@contextlib.contextmanager
def _busy_share() -> Iterator[dict[str, float | None]]:
    """The machine's busy share of its cores over the block (filled in when it ends).

    The cores are shared: with other work on them, every latency here grows.
    """
    out: dict[str, float | None] = {}
    before = cpu.snapshot(local_postgres=False)
    try:
        yield out
    finally:
        after = cpu.snapshot(local_postgres=False)
        if before and after:
            out.update(after.since(before, 1))


def _warm_worker(m: Measurement) -> None:
    """Run a few ``bench`` tasks through the fresh worker; wait for its LISTEN."""
    for i in range(WARMUP):
        m._wait_done(m._submit_one(-1 - i), timeout=60)
    m._wait_listening()


def _wait_until_all(ids: list[Any], status: str, timeout: float) -> None:
    """Poll until every task of ``ids`` has ``status``; raise if one failed, or past ``timeout``."""
    from django.db.models import Count

    from salvador_django.models import Task

    deadline = time.monotonic() + timeout
    tasks = Task.objects.filter(id__in=ids)
    while True:
        found = dict(tasks.values_list("status").annotate(n=Count("id")).order_by())
        if found.get(status) == len(ids):
            return
        if "failed" in found or time.monotonic() > deadline:
            raise RuntimeError(f"waiting for {len(ids)} task(s) to be {status}, found {found}")
        time.sleep(0.05)


def signal_round_trips(m: Measurement, samples: int) -> dict[str, Any]:
    """``send_signal()`` to a waiting task until its step runs again, one at a time."""
    from django.db import transaction

    from salvador_django import send_signal, submit
    from salvador_django.conf import get_settings

    poll = float(get_settings().POLL_INTERVAL)
    rng = random.Random(0)
    trips: list[float] = []
    sends: list[float] = []
    with m.running_worker("signals"), _busy_share() as busy:
        _warm_worker(m)
        with transaction.atomic():
            ids = [submit(SIGNAL_WORKFLOW, {"i": i}).pk for i in range(WARMUP + samples)]
        _wait_until_all(ids, "waiting", timeout=60 + len(ids) / 10)
        time.sleep(0.5)
        for i, task_id in enumerate(ids):
            # A random gap, so signals do not lock step with the polling phase.
            time.sleep(rng.uniform(0, poll))
            sent = time.time()
            send_signal(task_id, SIGNAL)
            committed = time.time()
            # The step records its own start: a gentler poll only spares the two cores.
            status, state = m._wait_done(task_id, every=0.005)
            if status != "completed":
                raise RuntimeError(f"signalled task {task_id} ended {status}")
            if i >= WARMUP:
                trips.append(state["resumed_at"] - sent)
                sends.append(committed - sent)
    trip = summary_ms(trips)
    log(
        m.backend,
        f"signal round trip ({len(trips)} samples): p50 {trip['p50']:.1f} ms, "
        f"p99 {trip['p99']:.1f} ms",
    )
    return {
        "round_trip_ms": trip,
        "samples_ms": [1000 * x for x in trips],
        "send_ms": summary_ms(sends),
        "poll_interval": poll,
        "machine_busy_share": busy.get("machine_busy_share"),
    }


# --------------------------------------------------------------------- timers


def clock_offset() -> tuple[float, float]:
    """The database's clock minus this process's, and the reading's uncertainty (seconds).

    The sample with the shortest round trip wins; the offset is read at its midpoint.
    """
    from django.db import connection

    sql = {
        "postgresql": "SELECT clock_timestamp()",
        "mysql": "SELECT UTC_TIMESTAMP(6)",  # naive, in UTC
    }.get(connection.vendor, "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
    best: tuple[float, float] | None = None
    with connection.cursor() as cursor:
        for _ in range(20):
            before = time.time()
            cursor.execute(sql)
            value = cursor.fetchone()[0]
            after = time.time()
            if not isinstance(value, datetime):
                value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            offset, error = value.timestamp() - (before + after) / 2, (after - before) / 2
            if best is None or error < best[1]:
                best = (offset, error)
    assert best is not None
    return best


def timer_lateness(m: Measurement, samples: int) -> dict[str, Any]:
    """Tasks sleeping 0.2 to 1 s: the woken step's start minus the timer's due time."""
    from salvador_django import submit
    from salvador_django.models import Task, Wait

    rng = random.Random(1)
    count = WARMUP + samples
    with m.running_worker("timers"), _busy_share() as busy:
        _warm_worker(m)
        ids = []
        for i in range(count):  # each in its own transaction, about 20 a second
            ids.append(submit(SLEEP_WORKFLOW, {"sleep": rng.uniform(*SLEEP_SECONDS), "i": i}).pk)
            time.sleep(rng.uniform(0, 2 * SUBMIT_GAP_SECONDS))
        _wait_until_all(ids, "completed", timeout=60 + count / 5)
    offset, error = clock_offset()
    states = dict(Task.objects.filter(id__in=ids).values_list("id", "state"))
    waits = Wait.objects.filter(task_id__in=ids, kind="sleep")
    until = {task_id: at.timestamp() for task_id, at in waits.values_list("task_id", "until") if at}
    late = [states[i]["resumed_at"] - until[i] + offset for i in ids[WARMUP:]]
    lateness = {**summary_ms(late), "min": 1000 * min(late)}
    log(
        m.backend,
        f"timer lateness ({len(late)} sleeps): p50 {lateness['p50']:.1f} ms, "
        f"p99 {lateness['p99']:.1f} ms, max {lateness['max']:.1f} ms "
        f"(clock offset {1000 * offset:+.2f} ± {1000 * error:.2f} ms, corrected)",
    )
    return {
        "lateness_ms": lateness,
        "samples_ms": [1000 * x for x in late],
        "sleep_seconds": list(SLEEP_SECONDS),
        "clock_offset_ms": 1000 * offset,
        "clock_offset_uncertainty_ms": 1000 * error,
        "machine_busy_share": busy.get("machine_busy_share"),
    }


# --------------------------------------------------------------------- waiting tasks


def seed_waiting(first: int, rows: int) -> float:
    """Bulk-insert ``rows`` waiting tasks; returns the seconds taken (settling included).

    Half wait for a signal without a timer; a quarter for one with a timeout, a
    quarter sleep; the timers lie 1 to 25 hours ahead, so none fires meanwhile.
    """
    from django.db import transaction
    from django.utils import timezone

    from salvador_django.models import Task
    from salvador_django.status import TaskStatus

    rng = random.Random(first)
    now = timezone.now()
    began = time.perf_counter()
    with transaction.atomic():
        for start in range(first, first + rows, SEED_BATCH):
            tasks = []
            for i in range(start, min(start + SEED_BATCH, first + rows)):
                wake_at = now + timedelta(hours=rng.uniform(*TIMER_HOURS)) if i % 2 else None
                sleeping = i % 4 == 1
                tasks.append(
                    Task(
                        workflow=SLEEP_WORKFLOW if sleeping else SIGNAL_WORKFLOW,
                        body={"seeded": i, "sleep": 86400} if sleeping else {"seeded": i},
                        status=TaskStatus.WAITING,
                        step_name="nap" if sleeping else "wait",
                        waiting_for="" if sleeping else SIGNAL,
                        wake_at=wake_at,
                        started_at=now,
                    )
                )
            Task.objects.bulk_create(tasks)
    history.settle()
    return time.perf_counter() - began


class StatementCounter:
    """Counts the SQL statements run on every connection opened while it is installed."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with self._lock:
            self.count += 1
        return execute(sql, params, many, context)

    def _attach(self, sender: Any, connection: Any, **kwargs: Any) -> None:
        if self not in connection.execute_wrappers:  # reconnecting fires the signal again
            connection.execute_wrappers.append(self)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StatementCounter]:
        from django.db.backends.signals import connection_created

        connection_created.connect(self._attach, weak=False)
        try:
            yield self
        finally:
            connection_created.disconnect(self._attach)


def _pg_counters(m: Measurement) -> dict[str, int] | None:
    """The bench database's activity counters (``pg_stat_database``), or None."""
    if m.stat_conn is None:
        return None
    m.stat_conn.execute("SELECT pg_stat_clear_snapshot()")
    row = m.stat_conn.execute(
        f"SELECT {', '.join(_PG_COUNTERS)} FROM pg_stat_database WHERE datname = %s", (PG_DB,)
    ).fetchone()
    return dict(zip(_PG_COUNTERS, (int(v) for v in row), strict=True))


def idle_worker_activity(m: Measurement) -> dict[str, float | None]:
    """What an idle in-process worker does per second: statements, and the database's work.

    The worker runs ``--concurrency`` threads, its timer thread and its maintenance
    thread, with a sweep every second; nothing else uses the bench database meanwhile
    (our own connection is closed), so on PostgreSQL ``pg_stat_database`` counts the
    worker alone.
    """
    from django.db import connections

    from salvador_django.worker import Worker, WorkerOptions

    options = dataclasses.replace(
        WorkerOptions.from_settings(concurrency=m.concurrency),
        sweep_interval=IDLE_SWEEP_INTERVAL,
        warn_of_unregistered=False,
    )
    connections.close_all()
    counter = StatementCounter()
    with counter.installed():
        worker = Worker(options)
        thread = threading.Thread(target=worker.run, name="bench-idle-worker")
        thread.start()
        try:
            time.sleep(IDLE_WARMUP_SECONDS)
            statements, before, began = counter.count, _pg_counters(m), time.monotonic()
            time.sleep(IDLE_SECONDS)
            statements = counter.count - statements
            after, elapsed = _pg_counters(m), time.monotonic() - began
        finally:
            worker.stop()
            thread.join(60)
            worker.queue.close()
    out: dict[str, float | None] = {"statements_per_second": statements / elapsed}
    for name in _PG_COUNTERS:
        out[f"{name}_per_second"] = (
            (after[name] - before[name]) / elapsed if before and after else None
        )
    return out


def waiting_cost(m: Measurement, levels: list[int]) -> dict[str, dict[str, Any]]:
    """Claim latency, idle activity and RSS with each number of waiting tasks."""
    from benchmarks.measure import CLAIM_SAMPLES, WORKFLOW, _rss_mib
    from salvador_django.models import Task

    workflows = (WORKFLOW, SIGNAL_WORKFLOW, SLEEP_WORKFLOW)
    for workflow in workflows:
        history.delete_workflow_tasks(workflow)
    history.settle()
    out: dict[str, dict[str, Any]] = {}
    waiting = Task.objects.filter(status="waiting")
    for level in sorted(levels):
        present = waiting.count()
        seeded = seed_waiting(present, level - present)
        figures: dict[str, Any] = {"seed_seconds": seeded, "waiting": waiting.count()}
        if not m.redis:  # the Redis queue claims by id: waiting rows are no cost to it
            m.submit_tasks(CLAIM_SAMPLES)
            figures["claim_ms"] = history.claim_latency(WORKFLOW, CLAIM_SAMPLES)
            history.delete_workflow_tasks(WORKFLOW)
        figures["idle"] = idle_worker_activity(m)
        with m.running_worker(f"waiting-{level}") as proc:
            _warm_worker(m)
            time.sleep(1.0)
            figures["rss_mib"] = _rss_mib(proc.pid)
        history.delete_workflow_tasks(WORKFLOW)
        if waiting.count() != level:
            m.result["errors"].append(
                f"waits: {waiting.count()} tasks waiting, not {level}: some timer fired"
            )
        out[str(level)] = figures
        claim = figures.get("claim_ms", {}).get("p50")
        log(
            m.backend,
            f"{level:,} waiting: seeded in {seeded:.1f}s, claim p50 "
            f"{'-' if claim is None else f'{claim:.2f} ms'}, idle worker "
            f"{figures['idle']['statements_per_second']:.1f} statements/s, "
            f"RSS {figures['rss_mib']} MiB",
        )
    for workflow in workflows:
        history.delete_workflow_tasks(workflow)
    history.settle()
    return out
