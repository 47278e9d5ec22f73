"""Helpers for users' own tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone

from salvador_django import scheduling
from salvador_django.conf import get_settings
from salvador_django.engine import Engine
from salvador_django.engine.blocked import MAX_WAIT_SECONDS
from salvador_django.leases import Lease, new_token
from salvador_django.models import Task, Wait
from salvador_django.payloads import seconds_of
from salvador_django.registry import registry
from salvador_django.status import TaskStatus, WaitOutcome
from salvador_django.timers import fire_due_timers


def run_until_idle(
    workflows: Sequence[str] | None = None, *, max_tasks: int = 10_000, parallel_steps: int = 1
) -> int:
    """Run every due task in this thread, synchronously, until none is due.

    A graph task's independent steps run one at a time, in this thread; with
    ``parallel_steps`` above 1 they run at the same time in that many threads, which
    see only committed data (use ``TransactionTestCase``, or pytest-django's
    ``transaction=True``).

    Tasks waiting for a retry's backoff are not due and stay pending; waiting tasks
    stay waiting until their signal arrives (``send_signal``) or their timer is due
    (:func:`advance_timers` makes it so). Timers already due fire. Works inside a
    test's transaction (no ``on_commit`` needed). Returns how many claims ran.
    """
    settings = get_settings()
    names = list(workflows) if workflows is not None else registry.names()
    engine = Engine(
        database=settings.DATABASE, worker_name="run_until_idle", parallelism=parallel_steps
    )
    engine.watch_timeouts = parallel_steps > 1
    tasks = Task.objects.using(settings.DATABASE)
    ran = 0
    try:
        while ran < max_tasks:
            token = new_token("run_until_idle")
            claimed = tasks.claim(names, token, settings.LEASE_SECONDS, limit=1)
            if not claimed:
                if fire_due_timers(settings.DATABASE):
                    continue
                break
            engine.run(claimed[0], Lease(claimed[0].id, token))
            ran += 1
    finally:
        engine.close()
    return ran


def advance_timers(by: float | timedelta) -> int:
    """Bring every timer of waiting and paused tasks ``by`` closer, as if that much passed.

    Sleeps end and wait timeouts pass as they would have; the tasks whose timer is
    now due are woken (paused ones when resumed). Returns how many were woken; run
    them with :func:`run_until_idle`.
    """
    delta = timedelta(seconds=seconds_of(by, "by", most=MAX_WAIT_SECONDS, zero=True))
    database = get_settings().DATABASE
    timed = Task.objects.using(database).filter(
        status__in=[TaskStatus.WAITING, TaskStatus.PAUSED], wake_at__isnull=False
    )
    Wait.objects.using(database).filter(
        task__in=timed.values("id"), outcome=WaitOutcome.OPEN, until__isnull=False
    ).update(until=F("until") - delta)
    timed.update(wake_at=F("wake_at") - delta)
    return len(fire_due_timers(database))


def tick_schedules(at: datetime) -> list[Task]:
    """Copy the declared schedules to their table (as a worker does when it starts),
    then tick those due at ``at`` (aware) as if it were now; returns the tasks submitted.

    Move ``at`` forward to test a schedule without waiting: its first tick is the
    first after the first sync (its table row's ``next_run_at``).
    """
    if timezone.is_naive(at):
        raise ValueError("tick_schedules() needs a timezone-aware datetime.")
    database = get_settings().DATABASE
    scheduling.sync_schedules(database)  # each time: a test's database starts empty
    return scheduling.tick_schedules(database, now=at)
