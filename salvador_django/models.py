"""Tasks and the record of their step attempts."""

from __future__ import annotations

import enum
import json
import sqlite3
import uuid
import weakref
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from django.db import connections, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from django.utils.translation import gettext_lazy as _

from salvador_django.conf import get_settings
from salvador_django.exceptions import InvalidTransition
from salvador_django.status import CompensationStatus, StepRunStatus, TaskStatus


def now_plus(seconds: float) -> models.Expression:
    """The database's clock plus ``seconds``: leases and delays never use a worker's clock."""
    return models.ExpressionWrapper(
        Now() + models.Value(timedelta(seconds=seconds), output_field=models.DurationField()),
        output_field=models.DateTimeField(),
    )


IDEMPOTENCY_KEY_MAX_LENGTH = 255


def requeue_changes(*, from_start: bool, first_step: str) -> dict[str, Any]:
    """The fields a requeue writes: :meth:`Task.requeue` and the bulk requeue share them.

    ``first_step`` is the workflow's first step, used with ``from_start``.
    """
    changes: dict[str, Any] = {
        "status": TaskStatus.PENDING,
        "run_after": Now(),
        "attempt": 0,
        "recoveries": 0,
        "error": "",
        "finished_at": None,
        "cancel_requested_at": None,
        "compensation": requeued_compensation(),
    }
    if from_start:
        changes.update(step=0, step_name=first_step, state={}, compensation=CompensationStatus.NONE)
    return changes


def requeued_compensation() -> models.Expression:
    """A requeued task's compensation: one that failed resumes, any other is over.

    Requeueing a task whose compensation failed retries that compensation (its
    completed steps must still be undone); otherwise the task runs forward again.
    """
    return models.Case(
        models.When(
            compensation=CompensationStatus.FAILED,
            then=models.Value(CompensationStatus.RUNNING),
        ),
        default=models.Value(CompensationStatus.NONE),
        output_field=models.CharField(),
    )


class Checkpoint(enum.Enum):
    """What recording a completed step found."""

    LOST = "lost"  # the claim was lost: nothing was written
    WRITTEN = "written"
    CANCEL_REQUESTED = "cancel requested"  # written; the task should stop now


class TaskQuerySet(models.QuerySet["Task"]):
    """The queries workers and operators run against tasks."""

    def due(self, workflows: Sequence[str] | None = None) -> TaskQuerySet:
        """Pending tasks whose ``run_after`` has passed, in the order workers take them."""
        qs = self.filter(status=TaskStatus.PENDING, run_after__lte=Now())
        if workflows is not None:
            qs = qs.filter(workflow__in=list(workflows))
        return qs.order_by("-priority", "run_after")

    def held(self, task_id: uuid.UUID, token: str) -> TaskQuerySet:
        """The task, only while ``token`` still holds its claim (the fence of every write)."""
        return self.filter(id=task_id, claimed_by=token, status=TaskStatus.RUNNING)

    def expired_leases(self) -> TaskQuerySet:
        """Running tasks whose lease has expired: their worker is gone or stalled."""
        return self.filter(status=TaskStatus.RUNNING, lease_expires_at__lt=Now())

    def failed(self) -> TaskQuerySet:
        return self.filter(status=TaskStatus.FAILED)

    def claim(
        self, workflows: Sequence[str], token: str, lease_seconds: float, limit: int = 1
    ) -> list[Task]:
        """Claim up to ``limit`` due tasks for ``token`` with a lease; returns them.

        Claiming is one conditional update, so two workers never claim the same task.
        The status is written into the SQL as a literal so that the planner can use
        the partial index of due tasks.
        """
        if not workflows or limit < 1:
            return []
        connection = connections[self.db]
        if connection.vendor == "postgresql":
            sql = _CLAIM_POSTGRESQL
            params: list[Any] = [*workflows, limit, token, lease_seconds]
        elif connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
            sql = _CLAIM_SQLITE
            params = [token, f"+{lease_seconds} seconds", *workflows, limit]
        else:
            return self._claim_conditional(workflows, token, lease_seconds, limit)
        return self._claim_raw(sql, params, workflows=len(workflows))

    def claim_ids(
        self, ids: Sequence[str | uuid.UUID], token: str, lease_seconds: float
    ) -> list[Task]:
        """Claim those of ``ids`` that are due, for ``token`` with a lease; returns them.

        The claim of a queue that names its tasks (Redis): the same conditional
        update, so an id popped twice, or for a task already taken, claims nothing.
        """
        if not ids:
            return []
        connection = connections[self.db]
        id_params = [str(i) for i in ids]
        if connection.vendor == "postgresql":
            sql = _CLAIM_IDS_POSTGRESQL
            params: list[Any] = [token, lease_seconds, *id_params]
        elif connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
            sql = _CLAIM_IDS_SQLITE
            params = [token, f"+{lease_seconds} seconds", *(i.replace("-", "") for i in id_params)]
        else:
            return self._take(self.due().filter(id__in=list(ids)), token, lease_seconds)
        return self._claim_raw(sql, params, ids=len(id_params))

    def _claim_raw(self, sql: str, params: list[Any], **placeholders: int) -> list[Task]:
        """Run one of the claim statements below; ``placeholders`` sizes its IN lists."""
        connection = connections[self.db]
        query = sql.format(
            table=connection.ops.quote_name(Task._meta.db_table),
            async_commit=_async_commit(connection),
            **{name: ", ".join(["%s"] * count) for name, count in placeholders.items()},
        )
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            columns = tuple(column[0] for column in cursor.description)
            rows = cursor.fetchall()
        if not rows:
            return []
        load = _row_loader(connection, columns)
        return [load(self.db, row) for row in rows]

    def checkpoint(
        self,
        task_id: uuid.UUID,
        token: str,
        *,
        step: int,
        step_name: str,
        state_json: str,
        run: dict[str, Any],
    ) -> Checkpoint:
        """Record a completed step: the task's progress and its ``StepRun``, in one commit.

        ``step_name`` is the next step's name, or ``""`` when the task is complete.
        ``run`` holds the ``StepRun`` fields, its ``output`` as JSON text (or None).
        Fenced on the claim: returns ``Checkpoint.LOST``, writing nothing, if ``token``
        lost it, and ``CANCEL_REQUESTED`` when the task was cancelled while it ran.
        """
        connection = connections[self.db]
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(Task._meta.db_table)
            runs = connection.ops.quote_name(StepRun._meta.db_table)
            query = _CHECKPOINT_POSTGRESQL.format(
                table=table, runs=runs, finish=_FINISH_POSTGRESQL if not step_name else ""
            )
            params = [
                step, step_name, state_json, task_id, token,
                run["index"], run["name"], run["attempt"], StepRunStatus.COMPLETED,
                run["started_at"], run["finished_at"], run["output"], run["worker"],
            ]  # fmt: skip
            with connection.cursor() as cursor:
                cursor.execute(query, params)
                row = cursor.fetchone()
            if row is None:
                return Checkpoint.LOST
            return Checkpoint.CANCEL_REQUESTED if row[0] else Checkpoint.WRITTEN
        changes: dict[str, Any] = {
            "step": step,
            "step_name": step_name,
            "state": json.loads(state_json),
            "attempt": 0,
            "recoveries": 0,
            "error": "",
            "updated_at": Now(),
        }
        if not step_name:
            changes.update(
                status=TaskStatus.COMPLETED,
                finished_at=Now(),
                claimed_by=None,
                lease_expires_at=None,
            )
        output = run["output"]
        held = self.held(task_id, token)
        with transaction.atomic(using=self.db):
            result = Checkpoint.WRITTEN
            if not held.filter(cancel_requested_at__isnull=True).update(**changes):
                if not held.update(**changes):
                    return Checkpoint.LOST
                result = Checkpoint.CANCEL_REQUESTED
            StepRun.objects.using(self.db).create(
                task_id=task_id,
                status=StepRunStatus.COMPLETED,
                **{**run, "output": None if output is None else json.loads(output)},
            )
        return result

    def _claim_conditional(
        self, workflows: Sequence[str], token: str, lease_seconds: float, limit: int
    ) -> list[Task]:
        """The portable claim (MySQL, old SQLite): a conditional update, then a read."""
        candidates: Any = self.due(workflows).values("id")[:limit]
        if connections[self.db].vendor == "mysql":  # MySQL cannot LIMIT in an IN subquery
            candidates = list(candidates.values_list("id", flat=True))
        return self._take(self.filter(id__in=candidates), token, lease_seconds)

    def _take(self, candidates: TaskQuerySet, token: str, lease_seconds: float) -> list[Task]:
        """Claim the pending ones of ``candidates`` with a conditional update, then read them."""
        claimed = candidates.filter(status=TaskStatus.PENDING).update(
            status=TaskStatus.RUNNING,
            claimed_by=token,
            lease_expires_at=now_plus(lease_seconds),
            started_at=models.functions.Coalesce(F("started_at"), Now()),
            updated_at=Now(),
        )
        if not claimed:
            return []
        return list(self.filter(claimed_by=token, status=TaskStatus.RUNNING))


RowLoader = Callable[[str, Sequence[Any]], "Task"]
_row_loaders: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], RowLoader]] = (
    weakref.WeakKeyDictionary()
)


def _row_loader(connection: Any, columns: tuple[str, ...]) -> RowLoader:
    """A function making a ``Task`` of a ``RETURNING *`` row of the task table.

    The claim runs once per task, so it skips ``RawQuerySet``, which resolves the
    columns and the converters again for every query: here they are worked out once
    per connection and column list.
    """
    loaders = _row_loaders.setdefault(connection, {})
    if columns in loaders:
        return loaders[columns]
    fields = Task._meta.concrete_fields
    position = {column: index for index, column in enumerate(columns)}
    order = [position[str(field.column)] for field in fields]
    converters = []
    for index, field in enumerate(fields):
        col = field.get_col(Task._meta.db_table)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converters.append((index, col, found))
    attnames = [field.attname for field in fields]

    def load(db: str, row: Sequence[Any]) -> Task:
        values = [row[i] for i in order]
        for index, col, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], col, connection)
        return Task.from_db(db, attnames, values)

    loaders[columns] = load
    return load


# The raw statements below are written once with <now>, <lease> and <take> tokens,
# filled per database by _dialect(); {table}, {workflows}, {ids} and {async_commit}
# are filled per call. <take> is what every claim writes: parameters token, lease.
_TAKE = """
    SET status = 'running', claimed_by = %s,
        lease_expires_at = <lease>,
        started_at = COALESCE(started_at, <now>),
        updated_at = <now>
"""


def _dialect(template: str, *, now: str, lease: str) -> str:
    return template.replace("<take>", _TAKE).replace("<lease>", lease).replace("<now>", now)


def _postgresql(template: str) -> str:
    now = "STATEMENT_TIMESTAMP()"
    return _dialect(template, now=now, lease=f"{now} + make_interval(secs => %s)")


def _sqlite(template: str) -> str:
    # Times are written in the format Django stores ("YYYY-MM-DD HH:MM:SS.fff", UTC);
    # the lease parameter is a date modifier such as "+60 seconds".
    now = "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'now')"
    return _dialect(template, now=now, lease="STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s)")


# One statement, one round trip: pick due rows (skipping rows other workers are
# claiming) and take them. Parameters: workflows..., limit, token, lease seconds.
_CLAIM_POSTGRESQL = _postgresql("""
    WITH candidates AS (
        SELECT id FROM {table}
        WHERE status = 'pending' AND run_after <= <now>
          AND workflow IN ({workflows}) {async_commit}
        ORDER BY priority DESC, run_after
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {table} AS t <take>
    FROM candidates WHERE t.id = candidates.id
    RETURNING t.*
""")

# SQLite runs one writer at a time, so the statement itself is the lock.
# Parameters: token, lease modifier, workflows..., limit.
# INDEXED BY: SQLite's planner would otherwise take the admin's workflow index and
# sort every task of the workflow on each claim.
_CLAIM_SQLITE = _sqlite("""
    UPDATE {table} <take>
    WHERE id IN (
        SELECT id FROM {table} INDEXED BY salvador_task_due
        WHERE status = 'pending' AND run_after <= <now> AND workflow IN ({workflows})
        ORDER BY priority DESC, run_after
        LIMIT %s
    )
    RETURNING *
""")

# Claims by id (the Redis queue). Parameters: token, lease, ids...; on SQLite the ids
# are 32 hex digits without dashes, as Django stores UUIDs there.
_CLAIM_IDS = """
    UPDATE {table} <take>
    WHERE id IN ({ids}) AND status = 'pending' AND run_after <= <now> {async_commit}
    RETURNING *
"""
_CLAIM_IDS_POSTGRESQL = _postgresql(_CLAIM_IDS)
_CLAIM_IDS_SQLITE = _sqlite(_CLAIM_IDS)

# A claim needs no durable commit: if the server loses it in a crash, the task is
# simply pending again at the same step, which is what an expired lease gives too. So
# a claim made in its own transaction (autocommit) does not wait for the WAL flush.
# set_config() runs for each row the claim takes, so only a claim that writes sets it.
_ASYNC_COMMIT_POSTGRESQL = "AND set_config('synchronous_commit', 'off', true) IS NOT NULL"


def _async_commit(connection: Any) -> str:
    """The claim's async-commit clause: PostgreSQL, and only in a transaction of its own."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _ASYNC_COMMIT_POSTGRESQL
    return ""


# A checkpoint in one statement, so one round trip and one commit: the fenced task
# update, and the step run inserted only if the update found the claim.
_CHECKPOINT_POSTGRESQL = """
    WITH task AS (
        UPDATE {table}
        SET step = %s, step_name = %s, state = %s::jsonb, attempt = 0, recoveries = 0,
            error = '', updated_at = STATEMENT_TIMESTAMP(){finish}
        WHERE id = %s AND claimed_by = %s AND status = 'running'
        RETURNING id, cancel_requested_at
    ), run AS (
        INSERT INTO {runs}
            (task_id, "index", name, attempt, status, started_at, finished_at,
             error, traceback, output, worker)
        SELECT id, %s, %s, %s, %s, %s, %s, '', '', %s::jsonb, %s FROM task
        RETURNING id
    )
    SELECT task.cancel_requested_at IS NOT NULL FROM task, run
"""
_FINISH_POSTGRESQL = """,
            status = 'completed', finished_at = STATEMENT_TIMESTAMP(),
            claimed_by = NULL, lease_expires_at = NULL"""


class Task(models.Model):
    """One run of a workflow: its input, progress and outcome."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.CharField(_("workflow"), max_length=200)
    body: Any = models.JSONField(_("body"), null=True, blank=True)
    state = models.JSONField(_("state"), default=dict, blank=True)
    meta = models.JSONField(_("meta"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING
    )
    step = models.PositiveIntegerField(_("step"), default=0, help_text=_("Steps completed."))
    step_name = models.CharField(
        _("step name"), max_length=200, blank=True, help_text=_("Name of the next step to run.")
    )
    error = models.TextField(_("error"), blank=True)
    attempt = models.PositiveIntegerField(
        _("attempt"),
        default=0,
        help_text=_("Attempts made of the current step (while it runs: this attempt's number)."),
    )
    recoveries = models.PositiveIntegerField(
        _("recoveries"),
        default=0,
        help_text=_("Lease expiries of the current step since its last checkpoint."),
    )
    priority = models.IntegerField(_("priority"), default=0, help_text=_("Higher runs first."))
    run_after = models.DateTimeField(_("run after"), db_default=Now())
    # NULL, not "", for "no key" and "not claimed": the unique constraint and the
    # partial indexes must ignore those rows.
    idempotency_key = models.CharField(  # noqa: DJ001
        _("idempotency key"), max_length=IDEMPOTENCY_KEY_MAX_LENGTH, null=True, blank=True
    )
    claimed_by = models.CharField(_("claimed by"), max_length=255, null=True, blank=True)  # noqa: DJ001
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), db_default=Now())
    updated_at = models.DateTimeField(_("updated at"), db_default=Now())
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    compensation = models.CharField(
        _("compensation"),
        max_length=16,
        choices=CompensationStatus.choices,
        db_default=CompensationStatus.NONE,
        blank=True,
        help_text=_("Undoing the completed steps after a failure or a cancellation."),
    )
    cancel_requested_at = models.DateTimeField(
        _("cancel requested at"),
        null=True,
        blank=True,
        help_text=_("Set when a running task is cancelled: it stops after its current step."),
    )

    objects: ClassVar[TaskQuerySet] = TaskQuerySet.as_manager()  # type: ignore[assignment]

    #: While a step runs: the ``time.monotonic()`` by which a step with a timeout
    #: should return. Long-running step code can check it to stop early.
    deadline: float | None = None

    class Meta:
        app_label = "salvador"
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes: ClassVar = [
            models.Index(
                F("priority").desc(),
                "run_after",
                name="salvador_task_due",
                condition=Q(status=TaskStatus.PENDING),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="salvador_task_lease",
                condition=Q(status=TaskStatus.RUNNING),
            ),
            models.Index(fields=["-created_at"], name="salvador_task_created"),
            # The admin's filters, newest first. Completed tasks (most rows) are
            # left out: the created index finds them quickly enough.
            models.Index(
                fields=["status", "-created_at"],
                name="salvador_task_triage",
                condition=~Q(status=TaskStatus.COMPLETED),
            ),
            models.Index(fields=["workflow", "-created_at"], name="salvador_task_workflow"),
            models.Index(
                fields=["-finished_at"],
                name="salvador_task_failures",
                condition=Q(status=TaskStatus.FAILED),
            ),
        ]
        permissions = (
            ("requeue_task", _("Can requeue tasks")),
            ("cancel_task", _("Can cancel tasks")),
        )
        constraints: ClassVar = [
            models.UniqueConstraint(
                # The key first, so that the admin's search by key alone uses it too.
                fields=["idempotency_key", "workflow"],
                condition=Q(idempotency_key__isnull=False),
                name="salvador_task_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow} {self.id} ({self.status})"

    def step_key(self) -> str:
        """A stable ``"<task id>:<step name>"`` to use as an external idempotency key."""
        return f"{self.id}:{self.step_name}"

    def requeue(self, from_start: bool = False) -> None:
        """Run a failed or cancelled task again from the step that stopped it.

        With ``from_start`` the task restarts at its first step with an empty state;
        that is also allowed for completed tasks. Raises :class:`InvalidTransition`
        for any other status, and when another operator requeued it first.
        """
        from salvador_django.definitions import registry

        allowed = [TaskStatus.FAILED, TaskStatus.CANCELLED]
        first_step = ""
        if from_start:
            allowed.append(TaskStatus.COMPLETED)
            first_steps = registry.get(self.workflow).steps
            first_step = first_steps[0].name if first_steps else ""
        self._transition(
            "requeue", allowed, **requeue_changes(from_start=from_start, first_step=first_step)
        )
        from salvador_django.queues import announce_on_commit

        announce_on_commit(self)

    def cancel(self) -> None:
        """Cancel the task: a pending or failed one at once, a running one after its step.

        For a running task this records the request (:attr:`cancel_requested`); its
        worker stops after the current step and the task ends ``cancelled``. Raises
        :class:`InvalidTransition` for a completed or cancelled task.
        """
        alias = self._state.db or get_settings().DATABASE
        tasks = Task.objects.using(alias).filter(id=self.id)
        # A task undoing its steps finishes that first; how it ends is already decided.
        tasks_not_compensating = tasks.exclude(compensation=CompensationStatus.RUNNING)
        with transaction.atomic(using=alias):
            changed = tasks_not_compensating.filter(
                status__in=[TaskStatus.PENDING, TaskStatus.FAILED]
            ).update(status=TaskStatus.CANCELLED, finished_at=Now(), updated_at=Now())
            changed = changed or tasks_not_compensating.filter(status=TaskStatus.RUNNING).update(
                cancel_requested_at=Coalesce(F("cancel_requested_at"), Now()), updated_at=Now()
            )
            if not changed:
                row = tasks.values_list("status", "compensation").first()
                if row is None:
                    raise Task.DoesNotExist(f"Task {self.id} does not exist.")
                status, compensation = row
                why = (
                    "its compensation is running"
                    if compensation == CompensationStatus.RUNNING
                    else f"it is {status}"
                )
                raise InvalidTransition(
                    f"Cannot cancel task {self.id}: {why}; "
                    "allowed while pending, running or failed.",
                    status=status,
                )
        self.refresh_from_db(using=alias)

    @property
    def cancel_requested(self) -> bool:
        """True while a cancellation waits for the current step (or compensation) to end."""
        return self.cancel_requested_at is not None and self.status in (
            TaskStatus.RUNNING,
            TaskStatus.PENDING,
        )

    def _transition(self, action: str, allowed: list[TaskStatus], **changes: Any) -> None:
        alias = self._state.db or get_settings().DATABASE
        with transaction.atomic(using=alias):
            updated = (
                Task.objects.using(alias)
                .filter(id=self.id, status__in=allowed)
                .update(updated_at=Now(), **changes)
            )
            current = Task.objects.using(alias).filter(id=self.id).values_list("status", flat=True)
            if not updated:
                status = current.first()
                if status is None:
                    raise Task.DoesNotExist(f"Task {self.id} does not exist.")
                raise InvalidTransition(
                    f"Cannot {action} task {self.id}: it is {status}; "
                    f"allowed from {', '.join(allowed)}.",
                    status=status,
                )
        self.refresh_from_db(using=alias)


class Overview(Task):
    """No data of its own: gives the admin's overview of tasks its place in the app index."""

    class Meta:
        proxy = True
        app_label = "salvador"
        verbose_name = _("overview")
        verbose_name_plural = _("overview")
        default_permissions = ()


class StepRun(models.Model):
    """One attempt of one step of a task."""

    # No index of its own: salvador_steprun_task (task, index, attempt) serves the
    # foreign key, and every checkpoint writes one index entry fewer.
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="step_runs", db_index=False
    )
    index = models.PositiveIntegerField(_("index"))
    name = models.CharField(_("name"), max_length=200)
    attempt = models.PositiveIntegerField(_("attempt"))
    status = models.CharField(_("status"), max_length=16, choices=StepRunStatus.choices)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    output = models.JSONField(_("output"), null=True, blank=True)
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    compensation = models.BooleanField(
        _("compensation"), db_default=False, help_text=_("This attempt undid the step.")
    )
    next_attempt_at = models.DateTimeField(
        _("next attempt at"),
        null=True,
        blank=True,
        help_text=_("When this attempt failed and was retried: when the next one is due."),
    )

    class Meta:
        app_label = "salvador"
        verbose_name = _("step run")
        verbose_name_plural = _("step runs")
        indexes: ClassVar = [
            models.Index(fields=["task", "index", "attempt"], name="salvador_steprun_task"),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.attempt} ({self.status})"

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at
