"""Run salvador-django tasks on Celery workers (``pip install "salvador-django[celery]"``).

Celery only carries "run task X now"; the database stays the truth. Two Celery
tasks are registered when this module is imported; let the app import it once
Django is set up, e.g. ``app.autodiscover_tasks(["salvador_django.contrib"],
related_name="celery")`` or ``include=["salvador_django.contrib.celery"]``:

- ``salvador_django.run_task(task_id)`` claims the task (the same conditional
  update, lease and fencing as ``runworkflows``) and runs its steps. A duplicate,
  late or early message claims nothing and does no harm.
- ``salvador_django.sweep()`` is for Celery beat: it reaps expired leases (a
  Celery worker killed mid-step), fires the due timers of waiting tasks, then runs
  due tasks itself for at most ``max_seconds``, so tasks whose message was lost, or
  that were submitted while no dispatch happened, still run.

With ``SALVADOR["DISPATCH"] = "celery"``, every announcement (a submit's commit, a
retry after its backoff, a requeue, a reaped lease) also sends ``run_task``, with
``eta`` = the task's ``run_after`` when it is in the future and the task's priority
mapped to the message priority (0-9) where the broker supports it. A task that
begins to wait with a timer (a sleep, a wait's timeout) is sent for its ``wake_at``:
``run_task`` then fires the timer and runs it; a signal's delivery sends it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections, connections
from django.db.models.functions import Now

from salvador_django.conf import get_settings
from salvador_django.engine import Engine, Outcome
from salvador_django.leases import Lease, new_token, reap_expired_leases, renew_leases, worker_name
from salvador_django.models import Task
from salvador_django.presence import celery_presence, leave_celery
from salvador_django.queues import Entry, announce
from salvador_django.registry import registry
from salvador_django.rollup import roll_up_quietly
from salvador_django.scheduling import ensure_synced, tick_schedules
from salvador_django.status import TaskStatus
from salvador_django.timers import fire_due_timers

try:
    from celery import shared_task
    from celery.signals import worker_process_shutdown, worker_shutdown
except ImportError:  # the module stays importable; check salvador.E030 reports it
    shared_task = None

logger = logging.getLogger("salvador_django")

#: The sweep claims nothing new after this many seconds (a task it took still runs
#: to its end): keep it below the beat interval.
SWEEP_MAX_SECONDS = 50.0


def celery_available() -> bool:
    return shared_task is not None


def message_priority(priority: int, *, lowest_first: bool = False) -> int:
    """A task's priority (any int, higher first) as a broker priority from 0 to 9.

    AMQP brokers serve 9 first; Celery's Redis transport serves 0 first
    (``lowest_first``), so the scale is turned over for it.
    """
    level = max(0, min(9, 4 + priority))
    return 9 - level if lowest_first else level


def _lowest_first(app: Any) -> bool:
    """Whether ``app``'s broker serves the lowest priority number first (Redis)."""
    url = str(app.conf.broker_url or "")
    return url.split(":", 1)[0] in {"redis", "rediss", "sentinel", "redis+socket"}


def dispatch(entries: Sequence[Entry]) -> None:
    """Send ``run_task`` for each entry (called after the tasks' commit)."""
    if shared_task is None:
        logger.error("salvador: DISPATCH is 'celery' but Celery is not installed")
        return
    lowest_first = _lowest_first(run_task.app)
    for entry in entries:
        priority = message_priority(entry.priority, lowest_first=lowest_first)
        options: dict[str, Any] = {"priority": priority}
        if entry.run_after is not None:
            options["eta"] = entry.run_after
        run_task.apply_async(args=[str(entry.task_id)], **options)


@contextmanager
def _heartbeat(lease: Lease, database: str) -> Iterator[None]:
    """Keep ``lease`` alive while the block runs; flag it lost if the claim goes."""
    assert lease.seconds is not None
    every = lease.seconds / 3
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every) and not lease.lost.is_set():
            try:
                renew_leases(database, [lease])
            except DatabaseError as exc:
                logger.error("salvador: heartbeat failed (%s); will try again", exc)
                connections[database].close()
                if lease.overdue():
                    lease.lost.set()  # expired by now: another worker may take the task
        connections[database].close()

    thread = threading.Thread(target=beat, name="salvador-celery-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_one(task_id: str) -> str:
    """Claim the task ``task_id`` if it is due and run it; what happened, as a word."""
    settings = get_settings()
    database = settings.DATABASE
    token = new_token(worker_name("celery"))
    claimed = Task.objects.using(database).claim_ids(
        [task_id], token, settings.LEASE_SECONDS, workflows=registry.names()
    )
    if not claimed and _fire_timer(database, task_id):  # the message of a wait's timer
        claimed = Task.objects.using(database).claim_ids(
            [task_id], token, settings.LEASE_SECONDS, workflows=registry.names()
        )
    if not claimed:
        # A message that came before the row is due (clocks differ) is sent again for
        # when it is; a task already taken or finished needs nothing.
        early = (
            Task.objects.using(database)
            .filter(id=task_id, status=TaskStatus.PENDING, run_after__gt=Now())
            .only("id", "workflow", "priority", "run_after")
            .first()
        )
        if early is not None:
            dispatch([Entry.of(early, scheduled=True)])
        return "skipped"
    return _run_claimed(claimed[0], token)


def _run_claimed(task: Task, token: str) -> str:
    settings = get_settings()
    lease = Lease(task.id, token, seconds=settings.LEASE_SECONDS, task=task)
    engine = Engine(database=settings.DATABASE, worker_name=worker_name("celery"))
    present = celery_presence(worker_name("celery"))  # in the workers table from now on
    try:
        with present.holding(lease), _heartbeat(lease, settings.DATABASE):
            outcome = engine.run(task, lease)
    finally:
        engine.close()
    if outcome in (Outcome.RETRY, Outcome.RELEASED):
        announce([Entry.of(task, scheduled=outcome == Outcome.RETRY)])
    elif outcome == Outcome.WAITING and task.wake_at is not None:
        # A message for when its timer is due: run_task then fires it, and runs the task.
        announce([Entry(task.id, task.workflow, task.priority, task.wake_at)])
    return outcome


def _fire_timer(database: str, task_id: str) -> bool:
    """Wake the task if it waits and its timer is due; whether it did."""
    try:
        return bool(fire_due_timers(database, ids=[task_id]))
    except (ValueError, ValidationError):  # not a task id: nothing to fire
        return False


def sweep_once(max_seconds: float = SWEEP_MAX_SECONDS) -> dict[str, int]:
    """Reap expired leases, fire due timers, tick due schedules, then run due tasks here
    for ``max_seconds``."""
    settings = get_settings()
    database = settings.DATABASE
    reaped = reap_expired_leases(database, settings.MAX_RECOVERIES)
    fire_due_timers(database)  # timers whose message was lost
    ensure_synced(database)
    ticked = len(tick_schedules(database))
    roll_up_quietly(database)
    deadline = time.monotonic() + max_seconds
    ran = 0
    workflows = registry.names()
    while workflows and time.monotonic() < deadline:
        token = new_token(worker_name("celery:sweep"))
        claimed = Task.objects.using(database).claim(workflows, token, settings.LEASE_SECONDS)
        if not claimed:
            break
        _run_claimed(claimed[0], token)
        ran += 1
    return {"reaped": reaped, "ticked": ticked, "ran": ran}


def _run_task(task_id: str) -> str:
    """Run the salvador-django task ``task_id`` (a no-op if another worker has it)."""
    try:
        return run_one(task_id)
    finally:
        close_old_connections()


def _sweep(max_seconds: float = SWEEP_MAX_SECONDS) -> dict[str, int]:
    """For Celery beat: reap expired leases, then run due tasks for a bounded time."""
    try:
        return sweep_once(max_seconds)
    finally:
        close_old_connections()


# acks_late: a message is acknowledged after its task ran, so a killed worker's
# message is delivered again; the lease (not the message) still decides who runs it.
run_task: Any = None
sweep: Any = None
if shared_task is not None:
    run_task = shared_task(name="salvador_django.run_task", acks_late=True, ignore_result=True)(
        _run_task
    )
    sweep = shared_task(name="salvador_django.sweep", ignore_result=True)(_sweep)

    def _leave(**kwargs: Any) -> None:
        leave_celery()

    # A Celery worker process that stops removes its row from the workers table.
    worker_process_shutdown.connect(_leave, weak=False)
    worker_shutdown.connect(_leave, weak=False)
