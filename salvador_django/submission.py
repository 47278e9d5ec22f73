"""Submitting tasks: validate, persist in the caller's transaction, enqueue on commit."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from salvador_django.clock import now_plus
from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError, PayloadError
from salvador_django.models import IDEMPOTENCY_KEY_MAX_LENGTH, Task
from salvador_django.queues import announce_on_commit
from salvador_django.registry import registry

if TYPE_CHECKING:
    from salvador_django.definitions import Workflow

logger = logging.getLogger("salvador_django")

_MAX_DELAY_SECONDS = 100 * 365 * 24 * 3600  # a century: beyond it, a typo


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
    settings = get_settings()
    definition = registry.get(workflow) if isinstance(workflow, str) else workflow
    if not definition.steps:
        raise ConfigurationError(f"Workflow {definition.name!r} has no steps to run.")
    _check_body(body, settings.MAX_BODY_BYTES)
    meta_dict = _check_meta(meta)
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_LENGTH
    ):
        raise PayloadError(
            "idempotency_key must be a non-empty string of at most "
            f"{IDEMPOTENCY_KEY_MAX_LENGTH} characters."
        )
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise PayloadError(f"priority must be an int, not {priority!r}.")
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
    alias = settings.DATABASE
    manager = Task.objects.using(alias)
    if idempotency_key is None:
        task.save(using=alias, force_insert=True)
    else:
        existing = manager.filter(workflow=definition.name, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic(using=alias):
                task.save(using=alias, force_insert=True)
        except IntegrityError:
            existing = manager.filter(
                workflow=definition.name, idempotency_key=idempotency_key
            ).first()
            if existing is None:
                raise
            return existing
    run_after_value: object = task.run_after
    if not isinstance(run_after_value, datetime):  # a database expression: read its value
        task.refresh_from_db(using=alias, fields=["run_after"])
    # A run_after already past is due now; a delay is never past (a zero delay is None).
    scheduled = when is not None and not (isinstance(when, datetime) and when <= timezone.now())
    announce_on_commit(task, scheduled=scheduled)
    return task


def get_task(task_id: UUID | str) -> Task:
    """The task with this id; raises ``Task.DoesNotExist``."""
    try:
        return Task.objects.using(get_settings().DATABASE).get(id=task_id)
    except (ValueError, TypeError, ValidationError) as exc:
        raise Task.DoesNotExist(f"{task_id!r} is not a task id.") from exc


def _check_body(body: Any, limit: int) -> None:
    try:
        encoded = json.dumps(body, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"The body is not JSON-serialisable: {exc}") from exc
    except RecursionError as exc:
        raise PayloadError("The body is nested too deeply to serialise.") from exc
    size = len(encoded.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise PayloadError(f"The body is {size} bytes serialised; MAX_BODY_BYTES is {limit}.")


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
    return dict(meta)


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
