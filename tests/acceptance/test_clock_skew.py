"""Workers whose wall clock is 5 minutes off, through libfaketime, on real processes.

Leases and due times use the database's clock (``now_plus()``), so a worker's skewed
clock must not make it steal a live lease, lose its own, or move a retry. Each
skewed worker is a ``runworkflows`` process started with libfaketime preloaded and
``FAKETIME_DONT_FAKE_MONOTONIC=1``: only its wall clock (``time.time()``,
``datetime.now()``) is off; its monotonic clock, which times heartbeats and sweeps,
is not. (libfaketime 0.9.10 then breaks ``time.sleep``, so the steps these workers
run wait on an Event, and skewed workers are stopped with SIGKILL: their shutdown
sleeps.)

PostgreSQL only: on SQLite the "database clock" is the clock of the process that
runs the query, and processes on one machine share one clock.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import NoReturn

import pytest
from django.db.models import DurationField, ExpressionWrapper, F
from django.db.models.functions import Now
from django_redis import get_redis_connection

from salvador_django import TaskStatus, submit
from salvador_django.models import StepRun, Task
from tests.support.processes import ROOT, run_in_group
from tests.support.waiting import wait_until
from tests.testapp.models import Event

pytestmark = [pytest.mark.slow, pytest.mark.only_backend("postgres")]

SKEW_SECONDS = {"+5m": 300.0, "-5m": -300.0}
SKEWS = pytest.mark.parametrize("skew", list(SKEW_SECONDS), ids=["ahead", "behind"])
#: Heartbeats every 2 s; a sweep (reaper included) every 0.3 s.
LEASE = {"lease_seconds": 6.0, "sweep_interval": 0.3}
#: The long step outlives the lease: without heartbeats it would be reaped.
STEP_SECONDS = 9.0
ONE_THREAD = ("--concurrency", "1")

Skewed = Callable[[str], dict[str, str]]


def _require_faketime(reason: str) -> NoReturn:
    if os.environ.get("SALVADOR_TEST_REQUIRE_SERVICES"):
        pytest.fail(f"{reason}, and SALVADOR_TEST_REQUIRE_SERVICES is set")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def skewed() -> Skewed:
    """``skewed("+5m")``: the environment of a process whose wall clock is 5 min ahead.

    The preload path is the one the installed ``faketime`` command sets (it forks, so
    the command itself is not used: the worker's pid must be the Python process).
    Checked once: ``date`` and Python's wall clocks move, the monotonic clock does not.
    """
    faketime = shutil.which("faketime")
    if faketime is None:
        _require_faketime("faketime is not installed (Debian: apt-get install faketime)")
    found = run_in_group([faketime, "-f", "+0", "sh", "-c", 'printf %s "$LD_PRELOAD"'], timeout=10)
    preload = found.stdout.strip()
    if found.returncode != 0 or not preload:
        _require_faketime(f"faketime does not run: {found.stderr.strip() or 'no LD_PRELOAD'}")

    def env(offset: str) -> dict[str, str]:
        inherited = os.environ.get("LD_PRELOAD")
        return {
            "LD_PRELOAD": f"{preload} {inherited}" if inherited else preload,
            "FAKETIME": offset,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    probe = (
        "import datetime, time; "
        "print(time.time(), time.monotonic(), datetime.datetime.now(datetime.UTC).timestamp())"
    )
    for offset, seconds in SKEW_SECONDS.items():
        real, monotonic = time.time(), time.monotonic()
        skewed_env = {**os.environ, **env(offset)}
        date = run_in_group(["date", "+%s"], env=skewed_env, timeout=30)
        python = run_in_group([sys.executable, "-c", probe], env=skewed_env, timeout=30)
        try:
            wall, mono, now = (float(v) for v in python.stdout.split())
            seen = [float(date.stdout) - real, wall - real, now - real, mono - monotonic]
        except ValueError:
            seen = []
        expected = [seconds, seconds, seconds, 0.0]
        if len(seen) != 4 or any(abs(a - b) > 5 for a, b in zip(seen, expected, strict=True)):
            _require_faketime(
                f"libfaketime ({preload}) does not skew the clocks by {offset}: date "
                f"{date.stdout.strip()!r} {date.stderr.strip()!r}, python {python.stdout!r} "
                f"{python.stderr.strip()!r} (real {real})"
            )
    return env


def worker_name(worker) -> str:
    """The worker's name, as in ``StepRun.worker`` and its claim tokens."""
    return f"{socket.gethostname()}:{worker.pid}"


def events(alias, task):
    return Event.objects.using(alias).filter(task_id=task.id).order_by("id")


def watch_until_finished(
    alias, task, timeout: float = 25
) -> tuple[set[str], set[str | None], list[timedelta]]:
    """Poll the task's row until it leaves ``running``.

    Returns the statuses and the claims seen, and the lease time left (by the
    database's clock) at each look while it ran.
    """
    row = (
        Task.objects.using(alias)
        .filter(id=task.id)
        .annotate(
            left=ExpressionWrapper(F("lease_expires_at") - Now(), output_field=DurationField())
        )
        .values_list("status", "claimed_by", "left")
    )
    statuses: set[str] = set()
    claims: set[str | None] = set()
    lease_left: list[timedelta] = []
    deadline = time.monotonic() + timeout
    while True:
        status, claimed_by, left = row.get()
        statuses.add(status)
        if status != TaskStatus.RUNNING:
            return statuses, claims, lease_left
        claims.add(claimed_by)
        lease_left.append(left)
        assert time.monotonic() < deadline, f"still running after {timeout}s"
        time.sleep(0.02)


def stop(worker, *, skewed: bool) -> None:
    """Stop a worker; one with a normal clock drains (SIGTERM) and exits 0.

    A skewed one is killed: under libfaketime 0.9.10, its shutdown's ``time.sleep``
    fails (or sleeps for the offset). Its log must show no error.
    """
    output = worker.output()
    for error in ("Traceback", "maintenance failed", "cannot take tasks", "interrupted"):
        assert error not in output, output
    if skewed:
        worker.kill()
        return
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()


def assert_held_throughout(alias, task, holder, others, started_at: float, skewed) -> None:
    """Watch ``task`` to its end: ``holder`` ran every step once, nobody else took it."""
    statuses, claims, lease_left = watch_until_finished(alias, task)
    assert statuses == {TaskStatus.RUNNING, TaskStatus.COMPLETED}  # never returned to pending
    assert len(claims) == 1, claims  # claimed_by never changed while it ran
    (claim,) = claims
    assert claim is not None
    assert claim.startswith(f"{worker_name(holder)}:"), claims
    # The heartbeats keep the lease in the future by the database's clock.
    assert all(
        timedelta(0) < left <= timedelta(seconds=LEASE["lease_seconds"]) for left in lease_left
    )
    assert time.monotonic() - started_at > LEASE["lease_seconds"]  # it outlived one lease
    stored = Task.objects.using(alias).get(id=task.id)
    assert (stored.status, stored.recoveries, stored.claimed_by) == (TaskStatus.COMPLETED, 0, None)
    ran = list(events(alias, task).values_list("step", "attempt", "pid"))
    assert ran == [(step, 1, holder.pid) for step in ("first", "second", "third")]
    runs = StepRun.objects.using(alias).filter(task_id=task.id)
    assert sorted(runs.values_list("name", "attempt", "status", "worker")) == sorted(
        (step, 1, "completed", worker_name(holder)) for step in ("first", "second", "third")
    )
    for worker in others:
        output = worker.output()
        assert "expired lease" not in output, output
        assert f"task {task.id}" not in output, output
    for worker in (holder, *others):
        stop(worker, skewed=worker in skewed)


def start_holding(alias, start_worker, env: dict[str, str]):
    """Start a worker alone and let it claim a task whose first step outlives the lease."""
    task = submit("waits", {"wait": {"first": STEP_SECONDS}})
    holder = start_worker(*ONE_THREAD, **LEASE, **env)
    wait_until(lambda: events(alias, task).exists(), timeout=20)
    return task, holder, time.monotonic()


def start_watching(alias, task, start_worker, envs: list[dict[str, str]]):
    """Start workers that reap every 0.3 s while ``task`` still runs its first step."""
    workers = [start_worker(*ONE_THREAD, **LEASE, **env) for env in envs]
    for worker in workers:
        worker.wait_for_output("started")  # each sweeps at once, then every 0.3 s
    stored = Task.objects.using(alias).get(id=task.id)
    assert (stored.status, stored.step) == (TaskStatus.RUNNING, 0), (stored.error, task)
    return workers


def test_workers_5_minutes_ahead_or_behind_never_steal_a_live_lease(
    backend, queue_name, start_worker, skewed
):
    task, holder, started_at = start_holding(backend, start_worker, {})
    others = start_watching(backend, task, start_worker, [skewed("+5m"), skewed("-5m")])
    assert_held_throughout(backend, task, holder, others, started_at, skewed=others)


@SKEWS
def test_a_worker_5_minutes_off_keeps_its_lease_and_sane_step_times(
    backend, queue_name, start_worker, skewed, skew
):
    task, holder, started_at = start_holding(backend, start_worker, skewed(skew))
    # The step itself runs on the skewed clock: the skew is real inside the worker.
    assert events(backend, task).get().started - time.time() == pytest.approx(
        SKEW_SECONDS[skew], abs=3
    )
    submitted = Task.objects.using(backend).get(id=task.id).created_at
    others = start_watching(backend, task, start_worker, [{}])
    assert_held_throughout(backend, task, holder, others, started_at, skewed=[holder])
    stored = Task.objects.using(backend).get(id=task.id)
    # The task's times are the database's.
    assert submitted <= stored.started_at <= stored.finished_at
    assert stored.finished_at - stored.started_at == pytest.approx(
        timedelta(seconds=STEP_SECONDS), abs=timedelta(seconds=3)
    )
    # A step's times come from the worker's clock (skewed, but consistently so):
    # their durations are right.
    runs = {run.name: run for run in StepRun.objects.using(backend).filter(task_id=task.id)}
    for run in runs.values():
        assert run.started_at <= run.finished_at
    assert runs["first"].duration == pytest.approx(
        timedelta(seconds=STEP_SECONDS), abs=timedelta(seconds=1)
    )
    assert runs["first"].finished_at <= runs["second"].started_at
    assert runs["second"].finished_at <= runs["third"].started_at


@SKEWS
def test_a_retry_scheduled_by_a_worker_5_minutes_off_runs_about_1_second_later(
    backend, queue_name, start_worker, skewed, skew
):
    # The default sweep interval (30 s): only the retry's schedule brings it back.
    worker = start_worker(*ONE_THREAD, **skewed(skew))
    worker.wait_for_output("started")
    time.sleep(0.5)  # past the startup sweep: it must not race the pop (a duplicate entry)
    task = submit("retries-once", {})
    wait_until(
        lambda: Task.objects.using(backend).get(id=task.id).status == TaskStatus.COMPLETED,
        timeout=10,
    )
    first, second = events(backend, task)
    assert (first.attempt, second.attempt) == (1, 2)
    assert {first.pid, second.pid} == {worker.pid}
    # Both stamps come from the same skewed clock: their difference is real time.
    assert 0.95 <= second.started - first.finished <= 3.0
    failed = StepRun.objects.using(backend).get(task_id=task.id, attempt=1)
    assert failed.status == "failed"
    assert failed.error == "ConnectionError: the first attempt fails on purpose"
    stored = Task.objects.using(backend).get(id=task.id)
    # The retry was due 1 s after the failure by the database's clock.
    assert stored.run_after >= stored.started_at + timedelta(seconds=1)
    assert stored.run_after <= stored.finished_at
    stop(worker, skewed=True)


def _redis_time(client) -> float:
    seconds, microseconds = client.time()
    return float(seconds) + float(microseconds) / 1_000_000


@pytest.mark.only_queue("redis")
def test_a_worker_5_minutes_ahead_does_not_recover_a_fresh_in_flight_id(
    backend, queue_name, start_worker, skewed, settings
):
    """An id popped a moment ago (its worker is about to claim it) stays in flight."""
    client = get_redis_connection("redis")
    inflight = f"{settings.SALVADOR['KEY_PREFIX']}inflight"
    popped = "00000000-0000-4000-8000-000000000001"
    client.zadd(inflight, {popped: _redis_time(client)})
    worker = start_worker(*ONE_THREAD, lease_seconds=20, sweep_interval=0.3, **skewed("+5m"))
    worker.wait_for_output("started")
    time.sleep(1.5)  # about 5 sweeps
    assert client.zscore(inflight, popped) is not None, worker.output()
    stop(worker, skewed=True)


@pytest.mark.only_queue("redis")
def test_a_worker_5_minutes_behind_recovers_a_stale_in_flight_id(
    backend, queue_name, start_worker, skewed, settings
):
    """An id popped more than a lease ago (its worker died before its claim) is recovered."""
    client = get_redis_connection("redis")
    inflight = f"{settings.SALVADOR['KEY_PREFIX']}inflight"
    popped = "00000000-0000-4000-8000-000000000002"
    client.zadd(inflight, {popped: _redis_time(client) - 21})
    worker = start_worker(*ONE_THREAD, lease_seconds=20, sweep_interval=0.3, **skewed("-5m"))
    worker.wait_for_output("started")
    wait_until(lambda: client.zscore(inflight, popped) is None, timeout=5)
    stop(worker, skewed=True)


@pytest.mark.only_queue("redis")
def test_an_entry_scheduled_without_run_after_by_a_process_5_minutes_ahead_is_due_now(
    backend, queue_name, skewed, settings
):
    """``schedule`` of an entry without ``run_after``: due now on Redis' clock, not ours."""
    task_id = "00000000-0000-4000-8000-000000000003"
    code = (
        "import django, uuid; django.setup(); "
        "from salvador_django.queues import Entry, get_queue; "
        f"get_queue().schedule([Entry(uuid.UUID({task_id!r}), 'three-steps', 0, None)])"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SALVADOR_TEST_QUEUE": "redis",
        "SALVADOR_TEST_KEY_PREFIX": settings.SALVADOR["KEY_PREFIX"],
        **skewed("+5m"),
    }
    scheduled = run_in_group([sys.executable, "-c", code], env=env, cwd=ROOT, timeout=30)
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    client = get_redis_connection("redis")
    delayed = f"{settings.SALVADOR['KEY_PREFIX']}delayed:three-steps"
    score = client.zscore(delayed, f"1:{task_id}")
    assert score is not None
    assert score <= _redis_time(client)
