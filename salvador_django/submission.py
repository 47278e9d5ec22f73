"""Submitting tasks: validate, persist in the caller's transaction, enqueue on commit."""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone

from salvador_django import schema, signals, tracing
from salvador_django.clock import now_plus
from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError, PayloadError
from salvador_django.models import IDEMPOTENCY_KEY_MAX_LENGTH, Signal, Task, deliver_signal
from salvador_django.payloads import MAX_BODY_DEPTH, check_json, text_problem
from salvador_django.queues import announce_on_commit
from salvador_django.registry import registry

if TYPE_CHECKING:
    from salvador_django.definitions import Workflow

logger = logging.getLogger("salvador_django")

_MAX_DELAY_SECONDS = 100 * 365 * 24 * 3600  # a century: beyond it, a typo

#: ``Task.priority`` is an ``IntegerField``: a signed 32-bit integer on PostgreSQL.
PRIORITY_RANGE = (-(2**31), 2**31 - 1)

__all__ = ["MAX_BODY_DEPTH", "get_task", "new_task", "send_signal", "submit"]


def submit(
    workflow: str | Workflow,
    body: Any = None,
    *,
    meta: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    delay: float | timedelta | None = None,
    run_after: datetime | None = None,
    priority: int = 0,
) -> Task:
    """Persist a pending task of ``workflow`` and enqueue it when the transaction commits.

    Raises :class:`~salvador_django.exceptions.WorkflowNotFound` for an unknown
    workflow and :class:`~salvador_django.exceptions.PayloadError` for a body that is
    not JSON or is over ``SALVADOR["MAX_BODY_BYTES"]``. With an ``idempotency_key``
    already used for this workflow, returns the existing task and creates nothing.
    """
    definition = registry.get(workflow) if isinstance(workflow, str) else workflow
    task = new_task(
        definition,
        body,
        meta=meta,
        idempotency_key=idempotency_key,
        delay=delay,
        run_after=run_after,
        priority=priority,
    )
    run_after_set: object = task.run_after
    when = None if isinstance(run_after_set, DatabaseDefault) else run_after_set
    settings = get_settings()
    alias = settings.DATABASE
    try:
        existing = _insert(task, alias)
    except DatabaseError as exc:
        clear = schema.explain(exc, alias)
        if clear is None:
            raise
        raise clear from exc
    if existing is not None:
        return existing
    run_after_value: object = task.run_after
    if not isinstance(run_after_value, datetime):  # a database expression: read its value
        task.refresh_from_db(using=alias, fields=["run_after"])
    # A run_after already past is due now; a delay is never past (a zero delay is None).
    scheduled = when is not None and not (isinstance(when, datetime) and when <= timezone.now())
    announce_on_commit(task, scheduled=scheduled)
    signals.send_on_commit(signals.task_submitted, Task, alias, task=task)
    return task


def new_task(
    definition: Workflow,
    body: Any = None,
    *,
    meta: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    delay: float | timedelta | None = None,
    run_after: datetime | None = None,
    priority: int = 0,
) -> Task:
    """A pending task of ``definition``, checked and not saved; see :func:`submit`."""
    if not definition.steps:
        raise ConfigurationError(f"Workflow {definition.name!r} has no steps to run.")
    definition.graph  # noqa: B018 - raises ConfigurationError for an unknown name or a cycle
    check_json(body, get_settings().MAX_BODY_BYTES)
    meta_dict = _check_meta(meta)
    if idempotency_key is not None:
        _check_key(idempotency_key)
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise PayloadError(
            f"priority must be an int from {low} to {high} (a 32-bit integer), not {priority!r}."
        )
    task = Task(
        workflow=definition.name,
        body=body,
        meta=meta_dict,
        idempotency_key=idempotency_key,
        priority=priority,
        step=0,
        step_name=definition.steps[0].name,
    )
    when = _run_after(delay, run_after)
    if when is not None:
        task.run_after = when
    task.trace_context = tracing.submitted(definition.name, task.id)
    return task


def _insert(task: Task, alias: str) -> Task | None:
    """Write ``task``; the task already holding its idempotency key, if one does."""
    if task.idempotency_key is None:
        task.save(using=alias, force_insert=True)
        return None
    same_key = Task.objects.using(alias).filter(
        workflow=task.workflow, idempotency_key=task.idempotency_key
    )
    existing = same_key.first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic(using=alias):
            task.save(using=alias, force_insert=True)
    except IntegrityError:
        existing = same_key.first()
        if existing is None:
            raise
        return existing
    return None


def send_signal(
    task_id: UUID | str, name: str, payload: Any = None, *, idempotency_key: str | None = None
) -> Signal:
    """Send the signal ``name`` (with a JSON ``payload``) to a task, in the caller's transaction.

    A ``task.wait_for(name)`` of the task takes it: the task is woken when the
    transaction commits if it waits for it now, and a signal sent earlier is kept until
    a wait takes it (first in, first out per name). A second signal with the same
    ``idempotency_key`` for the task is ignored (the first is returned). Raises
    ``Task.DoesNotExist``, :class:`~salvador_django.exceptions.InvalidTransition` for
    a finished task, and :class:`~salvador_django.exceptions.PayloadError` for a bad
    name, payload or key; nothing is stored then.
    """
    try:
        task_uuid = task_id if isinstance(task_id, UUID) else UUID(str(task_id))
    except ValueError as exc:
        raise Task.DoesNotExist(f"{task_id!r} is not a task id.") from exc
    return deliver_signal(
        get_settings().DATABASE, task_uuid, name, payload, idempotency_key=idempotency_key
    )


def get_task(task_id: UUID | str) -> Task:
    """The task with this id; raises ``Task.DoesNotExist``."""
    try:
        return Task.objects.using(get_settings().DATABASE).get(id=task_id)
    except (ValueError, TypeError, ValidationError) as exc:
        raise Task.DoesNotExist(f"{task_id!r} is not a task id.") from exc


def _check_meta(meta: Mapping[str, str] | None) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise PayloadError(f"meta must be a mapping of str to str, not {type(meta).__name__}.")
    bad = [
        key for key, value in meta.items() if not isinstance(key, str) or not isinstance(value, str)
    ]
    if bad:
        raise PayloadError(f"meta must map str to str; bad entries: {', '.join(map(repr, bad))}.")
    if text_problem("".join(chain.from_iterable(meta.items()))) is not None:  # once for all
        for key, value in meta.items():
            name = reprlib.repr(key)
            for where, text in ((f"the key {name}", key), (f"the value of {name}", value)):
                problem = text_problem(text)
                if problem is not None:
                    what, why = problem
                    raise PayloadError(f"meta has {what} in {where}: {why}.")
    return dict(meta)


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        raise PayloadError(
            "idempotency_key must be a non-empty string of at most "
            f"{IDEMPOTENCY_KEY_MAX_LENGTH} characters."
        )
    problem = text_problem(key)
    if problem is not None:
        what, why = problem
        raise PayloadError(f"idempotency_key has {what}: {why}.")


def _run_after(delay: float | timedelta | None, run_after: datetime | None) -> Any:
    """The value for ``Task.run_after``, or None for "now" (the database's clock)."""
    if delay is not None and run_after is not None:
        raise PayloadError("Pass either delay or run_after, not both.")
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= _MAX_DELAY_SECONDS
        ):
            raise PayloadError(
                f"delay must be a number of seconds from 0 to {_MAX_DELAY_SECONDS}, not {delay!r}."
            )
        return now_plus(seconds) if seconds else None
    if run_after is not None:
        if not isinstance(run_after, datetime):
            raise PayloadError(f"run_after must be a datetime, not {type(run_after).__name__}.")
        if django_settings.USE_TZ and timezone.is_naive(run_after):
            raise PayloadError("run_after must be timezone-aware (USE_TZ is True).")
        return run_after
    return None
