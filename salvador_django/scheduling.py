"""Schedules at run time: copied from the code to their table, ticked by every worker.

Workers copy the schedules the code declares to the ``Schedule`` table when they
start (:func:`sync_schedules`): new ones are added, changed ones updated (a changed
expression or time zone takes effect from its next tick), and those the code no
longer declares are kept but no longer tick. A worker ticks them in its timer thread
(Celery: in the beat sweep): :func:`tick_schedules` finds the due ones in one
indexed query and, for each, advances ``next_run_at`` and submits the tick's task in
one transaction. The advance is conditional on the ``next_run_at`` it read, and the
task's idempotency key is ``schedule:<name>:<tick time in UTC>``: however many
workers tick, each tick submits one task.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Now
from django.utils import timezone

from salvador_django.conf import get_settings
from salvador_django.exceptions import SalvadorError, WorkflowNotFound
from salvador_django.models import Schedule, Task
from salvador_django.registry import registry
from salvador_django.schedules import Schedule as Definition
from salvador_django.submission import submit

logger = logging.getLogger("salvador_django")

#: The most due schedules one round ticks; more are ticked by the next, at once.
TICK_BATCH = 500
#: How late a tick may be and still run under ``catch_up="none"`` (it was not missed,
#: just noticed a little late).
ON_TIME = timedelta(seconds=60)

_synced: dict[str, int] = {}  # database -> the registry's version it was synced with
_unknown_logged: set[str] = set()  # schedules whose workflow this process does not know
_sync_lock = threading.Lock()


@dataclass
class SyncResult:
    """What :func:`sync_schedules` changed (names)."""

    added: list[str]
    changed: list[str]
    disabled: list[str]


def declared_schedules() -> dict[str, tuple[str, Definition]]:
    """Every schedule the registered workflows declare: name -> (workflow, schedule)."""
    return {
        schedule.name: (name, schedule)
        for name in registry.names()
        for schedule in registry.get(name).schedules
        if schedule.name is not None
    }


def code_fields(workflow: str, schedule: Definition) -> dict[str, Any]:
    """The table's fields that ``schedule`` (of ``workflow``) defines, as stored."""
    return {
        "workflow": workflow,
        "cron": schedule.cron or "",
        "every": schedule.every,
        "timezone": schedule.timezone,
        "body": json.loads(json.dumps(schedule.body)),  # as it reads back (tuples: lists)
        "meta": dict(schedule.meta or {}),
        "catch_up": schedule.catch_up,
        "jitter": schedule.jitter,
    }


def sync_schedules(database: str | None = None, *, now: datetime | None = None) -> SyncResult:
    """Copy the declared schedules to the table: add, update, disable. Idempotent.

    Safe to run from many workers at once: a schedule is added once (its name is
    unique), and an unchanged one is left alone, its ``next_run_at`` too. ``now``
    (aware) is when the new and changed ones count their first tick from (tests).
    """
    database = database or get_settings().DATABASE
    version = registry.version
    now = now or timezone.now()
    declared = declared_schedules()
    rows = {row.name: row for row in Schedule.objects.using(database)}
    result = SyncResult([], [], [])
    for name, (workflow, schedule) in declared.items():
        fields = code_fields(workflow, schedule)
        row = rows.get(name)
        if row is None:
            try:
                with transaction.atomic(using=database):
                    Schedule.objects.using(database).create(
                        name=name, next_run_at=schedule.next_tick(now), **fields
                    )
            except IntegrityError:
                continue  # another worker added it meanwhile
            result.added.append(name)
            continue
        if row.fields_of() == fields and row.active:
            continue
        update = {**fields, "active": True, "updated_at": now}
        timing = ("cron", "every", "timezone")
        if not row.active or any(getattr(row, f) != fields[f] for f in timing):
            update["next_run_at"] = schedule.next_tick(now)
        Schedule.objects.using(database).filter(pk=row.pk).update(**update)
        result.changed.append(name)
    gone = [name for name, row in rows.items() if name not in declared and row.active]
    if gone:
        Schedule.objects.using(database).filter(name__in=gone).update(active=False, updated_at=now)
        result.disabled.extend(gone)
    for what, names in vars(result).items():
        if names:
            logger.info("salvador: schedules %s: %s", what, ", ".join(sorted(names)))
    with _sync_lock:
        _synced[database] = version
    return result


def ensure_synced(database: str) -> None:
    """Sync once per process, and again whenever workflows were (un)registered since."""
    if _synced.get(database) != registry.version:
        sync_schedules(database)


def seconds_to_next_tick(database: str) -> float | None:
    """Seconds until the soonest tick of an active schedule (database clock); None if none."""
    row = (
        Schedule.objects.using(database)
        .filter(active=True, paused=False)
        .annotate(now=Now())
        .order_by("next_run_at")
        .values_list("next_run_at", "now")
        .first()
    )
    if row is None or row[0] is None or row[1] is None:
        return None
    return float((row[0] - row[1]).total_seconds())


def tick_due(database: str) -> float | None:
    """For a timer loop: tick the due schedules (syncing first if needed). Returns 0 if
    more may be due at once, else the seconds until the next tick, or None (unknown:
    none is left, or only ones another worker must tick)."""
    ensure_synced(database)
    soonest = seconds_to_next_tick(database)
    if soonest is None or soonest > 0:
        return soonest
    _, full = _tick_batch(database, None)
    return 0.0 if full else None


def tick_schedules(database: str | None = None, *, now: datetime | None = None) -> list[Task]:
    """Submit the tasks of the due ticks of every schedule; returns the tasks submitted.

    ``now`` (aware) replaces the database's clock: tests move it instead of waiting.
    The tasks are announced when their tick's transaction commits.
    """
    database = database or get_settings().DATABASE
    submitted: list[Task] = []
    while True:
        tasks, full = _tick_batch(database, now)
        submitted.extend(tasks)
        if not full:
            return submitted


def _tick_batch(database: str, now: datetime | None) -> tuple[list[Task], bool]:
    """Tick up to ``TICK_BATCH`` due schedules; their tasks, and whether it was full."""
    clock: Any = Now() if now is None else Value(now)
    due = Schedule.objects.using(database).filter(active=True, paused=False, next_run_at__lte=clock)
    if now is None:  # the database's clock, read with the rows
        due = due.annotate(clock=clock)
    rows = list(due.order_by("next_run_at")[:TICK_BATCH])
    submitted: list[Task] = []
    for row in rows:
        now_then = _aware(cast(Any, row).clock) if now is None else now
        try:
            submitted.extend(_tick(database, row, now_then))
        except (SalvadorError, ValueError) as exc:  # this schedule's fault: the others go on
            # E.g. a body over MAX_BODY_BYTES. Its tick is skipped (logged once), not retried
            # every round.
            logger.error("salvador: schedule %r cannot tick, tick skipped: %s", row.name, exc)
            _advance(database, row, now_then)
    return submitted, len(rows) == TICK_BATCH


def run_schedule_now(row: Schedule, database: str | None = None) -> Task:
    """Submit one task of ``row`` now, with a key of its own; its ticks are unchanged."""
    database = database or get_settings().DATABASE
    at = timezone.now()
    with transaction.atomic(using=database):
        task = _submit(row, at, key=f"schedule:{row.name}:now:{_utc_text(at)}", delay=None)
        Schedule.objects.using(database).filter(pk=row.pk).update(
            last_run_at=at, last_task=task, updated_at=at
        )
    return task


def pause_schedule(row: Schedule, database: str | None = None) -> bool:
    """Pause ``row`` on every worker; False if it was paused already."""
    database = database or get_settings().DATABASE
    rows = Schedule.objects.using(database).filter(pk=row.pk, paused=False)
    return bool(rows.update(paused=True, updated_at=timezone.now()))


def resume_schedule(row: Schedule, database: str | None = None) -> bool:
    """Resume ``row``; False if it was not paused. The ticks missed while it was paused
    do not run: a next run in the past becomes its first tick after now."""
    database = database or get_settings().DATABASE
    now = timezone.now()
    following = row.definition().next_tick(now)
    rows = Schedule.objects.using(database).filter(pk=row.pk, paused=True)
    missed = Case(When(next_run_at__lt=now, then=Value(following)), default=F("next_run_at"))
    return bool(rows.update(paused=False, next_run_at=missed, updated_at=now))


def _tick(database: str, row: Schedule, now: datetime) -> list[Task]:
    """Advance ``row`` past ``now`` and submit its due ticks' tasks, in one transaction."""
    try:
        registry.get(row.workflow)
    except WorkflowNotFound:  # another worker's code has it (a deploy under way): leave it
        if row.name not in _unknown_logged:
            _unknown_logged.add(row.name)
            logger.warning(
                "salvador: schedule %r: workflow %r is not registered here; other workers "
                "tick it", row.name, row.workflow,
            )  # fmt: skip
        return []
    schedule = row.definition()
    limit = get_settings().MAX_CATCH_UP if schedule.catch_up == "all" else 1
    due = _due_ticks(schedule, row.next_run_at, now, limit)
    following = schedule.next_tick(now)
    run = _to_run(schedule, due, now, limit)
    with transaction.atomic(using=database):
        advanced = (
            Schedule.objects.using(database)
            .filter(pk=row.pk, next_run_at=row.next_run_at, active=True, paused=False)
            .update(next_run_at=following, updated_at=timezone.now())
        )
        if not advanced:
            return []  # another worker ticked it (or it was paused) meanwhile
        tasks = [_submit(row, tick, key=f"schedule:{row.name}:{_utc_text(tick)}",
                         delay=_jitter(schedule, tick, now)) for tick in run]  # fmt: skip
        if tasks:
            Schedule.objects.using(database).filter(pk=row.pk).update(
                last_run_at=run[-1], last_task=tasks[-1]
            )
    return tasks


def _advance(database: str, row: Schedule, now: datetime) -> None:
    """Move ``row`` past ``now`` without a task (if no other worker moved it first)."""
    try:
        following = row.definition().next_tick(now)
    except SalvadorError:
        following = now + timedelta(hours=1)  # a row edited by hand into nonsense: later
    Schedule.objects.using(database).filter(pk=row.pk, next_run_at=row.next_run_at).update(
        next_run_at=following, updated_at=timezone.now()
    )


def _due_ticks(schedule: Definition, first: datetime, now: datetime, limit: int) -> list[datetime]:
    """The ticks from ``first`` to ``now``, oldest first: the last ``limit`` + 1 at most.

    Counted back from ``now``, so that a long downtime costs no more than a short one.
    """
    ticks: list[datetime] = []
    cursor = now + timedelta(microseconds=1)  # ticks at ``now`` are due
    while len(ticks) <= limit:
        tick = schedule.previous_tick(cursor)
        if tick < first:
            break
        ticks.append(tick)
        cursor = tick
    return ticks[::-1] or [first]


def _to_run(schedule: Definition, due: list[datetime], now: datetime, limit: int) -> list[datetime]:
    """Which of the due ticks (the most recent ``limit`` + 1 at most) run, as the
    schedule's ``catch_up`` says; ticks left out are logged."""
    if schedule.catch_up == "all":
        if len(due) > limit:
            logger.warning(
                "salvador: schedule %r missed more than %d ticks; running the last %d "
                "(MAX_CATCH_UP)", schedule.name, limit, limit,
            )  # fmt: skip
        return due[-limit:]
    latest = due[-1]
    run = [] if schedule.catch_up == "none" and now - latest > ON_TIME else [latest]
    if len(due) > len(run):
        logger.info(
            "salvador: schedule %r skipped missed ticks up to %s (catch_up=%r)",
            schedule.name, _utc_text(due[-1] if not run else due[-2]), schedule.catch_up,
        )  # fmt: skip
    return run


def _jitter(schedule: Definition, tick: datetime, now: datetime) -> float | None:
    """A random delay of up to the schedule's jitter, counted from the tick; None: now."""
    if not schedule.jitter:
        return None
    late = (now - tick).total_seconds()
    delay = random.uniform(0, schedule.jitter.total_seconds()) - late  # noqa: S311 - spread, not secret
    return delay if delay > 0 else None


def _submit(row: Schedule, tick: datetime, *, key: str, delay: float | None) -> Task:
    meta = {**(row.meta or {}), "scheduled_for": _utc_text(tick)}
    return submit(row.workflow, row.body, meta=meta, idempotency_key=key, delay=delay)


def _utc_text(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601 with a ``Z`` ("2026-03-29T01:00:00Z")."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _aware(value: Any) -> datetime:
    """The clock a query returned, as an aware datetime (SQLite returns text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value  # type: ignore[no-any-return]
