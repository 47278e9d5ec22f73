"""Operations on many tasks at once: requeue the dead-letter set, purge old tasks.

Both work in batches, each batch its own short transaction, so neither holds locks
for longer than one batch however many rows it touches. The management commands
``requeueworkflows`` and ``purgeworkflows`` are their faces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from salvador_django import transitions
from salvador_django.exceptions import InvalidTransition
from salvador_django.models import StepRun, Task, Wait
from salvador_django.queues import announce_on_commit
from salvador_django.registry import registry
from salvador_django.status import FINISHED, CompensationStatus

BATCH_SIZE = 1000
#: The largest batch: its ids are one query's parameters, and its locks one transaction's.
MAX_BATCH_SIZE = 10_000
#: How far from now an age or a date may reach, either way: beyond it, a typo.
MAX_AGE = timedelta(days=36_500)  # 100 years
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: Called after each batch with the number of tasks it handled.
OnBatch = Callable[[int], None]


def parse_moment(text: str, *, now: datetime | None = None) -> datetime:
    """A moment given as an age (``30d``, ``12h``, ``90m``, ``45s``, ``2w``) or a date.

    An age means that long before ``now``; a date or datetime (ISO 8601) is taken as
    is, in the current time zone when it has none. Either may reach at most
    :data:`MAX_AGE` (100 years) from ``now``. Raises ``ValueError`` otherwise.
    """
    text = text.strip()
    now = now or timezone.now()
    match = _AGE.fullmatch(text)
    if match:
        seconds = float(match[1]) * _UNITS[match[2]]
        if seconds > MAX_AGE.total_seconds():  # infinity too (a number of 309 digits)
            raise ValueError(
                f"{text!r} is more than 100 years ago: an age is at most {MAX_AGE.days}d"
            )
        return now - timedelta(seconds=seconds)
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is not None:
            moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise ValueError(
            f"{text!r} is neither an age (such as 30d, 12h, 90m, 45s, 2w) "
            "nor an ISO 8601 date or datetime"
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    if abs(moment - now) > MAX_AGE:  # nor can Python convert year 1 or 9999 to UTC
        raise ValueError(
            f"{text!r} is more than 100 years from now: a date is at most 100 years "
            "before or after now"
        )
    return moment


def requeue_tasks(
    tasks: Any,
    *,
    from_start: bool = False,
    batch_size: int = BATCH_SIZE,
    on_batch: OnBatch | None = None,
) -> int:
    """Requeue the failed or cancelled tasks of the queryset ``tasks``; how many.

    The same transition as :meth:`Task.requeue`, applied a batch at a time: each
    batch locks its rows, moves those still failed or cancelled (with
    ``from_start``, completed ones too) back to pending, and announces them after
    its commit. Tasks that another worker or operator moved meanwhile are skipped.
    """
    move = transitions.RESTART if from_start else transitions.REQUEUE
    candidates = move.rows(tasks).order_by("id")
    requeued, last_id = 0, None
    while True:
        page = candidates if last_id is None else candidates.filter(id__gt=last_id)
        ids = list(page.values_list("id", flat=True)[:batch_size])
        if not ids:
            return requeued
        last_id = ids[-1]
        count = _requeue_batch(tasks.db, ids, move)
        requeued += count
        if on_batch is not None:
            on_batch(count)


def _requeue_batch(database: str, ids: list[Any], move: transitions.Move) -> int:
    rows = Task.objects.using(database)
    with transaction.atomic(using=database):
        locked = list(
            move.rows(rows.select_for_update().filter(id__in=ids)).values_list(
                "id", "workflow", "compensation"
            )
        )
        by_workflow: dict[str, list[Any]] = {}
        run_again = []  # from their first step: their recorded waits go
        for task_id, workflow, compensation in locked:
            by_workflow.setdefault(workflow, []).append(task_id)
            if move is transitions.RESTART or compensation == CompensationStatus.COMPLETED:
                run_again.append(task_id)
        Wait.objects.using(database).filter(task_id__in=run_again).delete()
        for workflow, task_ids in by_workflow.items():
            batch = rows.filter(id__in=task_ids)
            if move is transitions.RESTART:
                move.apply(batch, step=0, step_name=_first_step(workflow), state={})
            else:
                move.apply(batch)
        announce_on_commit(*rows.filter(id__in=[row[0] for row in locked]).only(*_ENTRY_FIELDS))
    return len(locked)


_ENTRY_FIELDS = ("id", "workflow", "priority", "run_after")


def _first_step(workflow: str) -> str:
    if workflow not in registry:
        raise InvalidTransition(
            f"Cannot restart tasks of {workflow!r} from the first step: "
            "no workflow of that name is registered."
        )
    steps = registry.get(workflow).steps
    return steps[0].name if steps else ""


def purge_tasks(
    tasks: Any, *, batch_size: int = BATCH_SIZE, on_batch: OnBatch | None = None
) -> int:
    """Delete the finished tasks of the queryset ``tasks`` and their step runs; how many.

    Each batch deletes up to ``batch_size`` tasks in its own transaction, so no lock
    is held longer than one batch. Tasks that are not finished are never deleted.
    """
    candidates = tasks.filter(status__in=FINISHED).order_by()
    database = tasks.db
    purged = 0
    while True:
        ids = list(candidates.values_list("id", flat=True)[:batch_size])
        if not ids:
            return purged
        with transaction.atomic(using=database):
            StepRun.objects.using(database).filter(task_id__in=ids).delete()
            count = Task.objects.using(database).filter(id__in=ids, status__in=FINISHED).delete()[0]
        purged += count
        if on_batch is not None:
            on_batch(count)


def select_tasks(
    database: str,
    *,
    workflows: Sequence[str] = (),
    statuses: Sequence[str] = (),
    finished_after: datetime | None = None,
    finished_before: datetime | None = None,
) -> Any:
    """The tasks the maintenance commands act on, by workflow, status and finish time."""
    tasks = Task.objects.using(database).all()
    if workflows:
        tasks = tasks.filter(workflow__in=list(workflows))
    if statuses:
        tasks = tasks.filter(status__in=list(statuses))
    if finished_after is not None:
        tasks = tasks.filter(finished_at__gte=finished_after)
    if finished_before is not None:
        tasks = tasks.filter(finished_at__lt=finished_before)
    return tasks
