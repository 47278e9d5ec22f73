"""The queries workers and operators run against tasks: due, held, claim, checkpoint."""

from __future__ import annotations

import enum
import functools
import json
import sqlite3
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections, models, transaction
from django.db.models.functions import Now

from salvador_django import sql, transitions
from salvador_django.status import StepRunStatus, TaskStatus
from salvador_django.transitions.tree import lock_family, settle

if TYPE_CHECKING:
    from salvador_django.models import Task


class Checkpoint(enum.Enum):
    """What recording a completed step found."""

    LOST = "lost"  # the claim was lost: nothing was written
    WRITTEN = "written"
    CANCEL_REQUESTED = "cancel requested"  # written; the task should stop now
    PAUSE_REQUESTED = "pause requested"  # written; the task should pause now


class TaskQuerySet(models.QuerySet["Task"]):
    """The queries workers and operators run against tasks."""

    def due(self, workflows: Sequence[str] | None = None) -> TaskQuerySet:
        """Pending tasks whose ``run_after`` has passed, in the order workers take them."""
        qs = self.filter(status=TaskStatus.PENDING, run_after__lte=Now())
        if workflows is not None:
            qs = qs.filter(workflow__in=list(workflows))
        return qs.order_by("-priority", "run_after")

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
            statement = sql.CLAIM_POSTGRESQL
            params: list[Any] = [*workflows, limit, token, lease_seconds]
        elif connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
            statement = sql.CLAIM_SQLITE
            params = [token, f"+{lease_seconds} seconds", *workflows, limit]
        else:
            return self._claim_conditional(workflows, token, lease_seconds, limit)
        return self._claim_raw(statement, params, workflows=len(workflows))

    def claim_ids(
        self,
        ids: Sequence[str | uuid.UUID],
        token: str,
        lease_seconds: float,
        *,
        workflows: Sequence[str],
    ) -> list[Task]:
        """Claim those of ``ids`` that are due and of ``workflows``, for ``token``; returns them.

        The claim of a queue that names its tasks (Redis): the same conditional
        update, so an id popped twice, for a task already taken, or of a workflow this
        worker does not serve, claims nothing. A string that is not a UUID (an entry
        someone wrote into Redis) is skipped.
        """
        id_params = [str(i) for i in _uuids(ids)]
        if not id_params or not workflows:
            return []
        connection = connections[self.db]
        if connection.vendor == "postgresql":
            statement = sql.CLAIM_IDS_POSTGRESQL
            params: list[Any] = [token, lease_seconds, *id_params, *workflows]
        elif connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
            statement = sql.CLAIM_IDS_SQLITE
            hex_ids = (i.replace("-", "") for i in id_params)
            params = [token, f"+{lease_seconds} seconds", *hex_ids, *workflows]
        else:
            if connection.vendor != "mysql":
                return self._take(id_params, token, lease_seconds, self.due(workflows))
            with transaction.atomic(using=self.db):
                return self._claim_mysql(id_params, token, lease_seconds, workflows)
        return self._claim_raw(statement, params, ids=len(id_params), workflows=len(workflows))

    def _claim_raw(self, statement: str, params: list[Any], **placeholders: int) -> list[Task]:
        """Run one of the claim statements of ``sql``; ``placeholders`` sizes its IN lists."""
        connection = connections[self.db]
        query = sql.claim_query(statement, connection, self.model, **placeholders)
        with sql.statement_cursor(connection) as cursor:
            cursor.execute(query, params)
            rows = cursor.fetchall()
        if not rows:
            return []
        load = sql.row_loader(self.model, connection, sql.model_columns(self.model))
        return [load(self.db, row) for row in rows]  # type: ignore[misc]

    def checkpoint(
        self,
        task_id: uuid.UUID,
        token: str,
        *,
        step: int,
        step_name: str,
        state_json: str,
        run: dict[str, Any],
        family: bool = True,
        graph: tuple[dict[str, Any], Any, str] | None = None,
    ) -> Checkpoint:
        """Record a completed step: the task's progress and its ``StepRun``, in one commit.

        ``step_name`` is the next step's name, or ``""`` when the task is complete (the
        move is then ``COMPLETE``, else ``CHECKPOINT``). ``run`` holds the ``StepRun``
        fields, its ``output`` as JSON text (or None); the run records the state too.
        Fenced on the claim: returns ``Checkpoint.LOST``, writing nothing, if ``token``
        lost it, and ``CANCEL_REQUESTED`` when the task was cancelled while it ran.
        The last step's ``output`` becomes the task's result. ``family=False`` says the
        task has no parent and no children (see :mod:`salvador_django.transitions.tree`).
        ``graph`` is a graph task's ``(progress, result, error)``; ``run`` may then give its
        own ``status`` (a skipped step's).
        """
        if step_name or not family:
            return self._checkpoint(task_id, token, step, step_name, state_json, run, family, graph)
        with transaction.atomic(using=self.db):  # the task ends: its relatives are told
            move, held = transitions.COMPLETE, {"id": task_id}
            selected = move.rows(self, token=token, where=held)
            relatives = lock_family(move, selected)
            written = self._checkpoint(
                task_id, token, step, step_name, state_json, run, False, graph
            )
            if written != Checkpoint.LOST:
                settle(move, selected, relatives)
            return written

    def _checkpoint(
        self,
        task_id: uuid.UUID,
        token: str,
        step: int,
        step_name: str,
        state_json: str,
        run: dict[str, Any],
        family: bool,
        graph: tuple[dict[str, Any], Any, str] | None = None,
    ) -> Checkpoint:
        connection = connections[self.db]
        mysql = connection.vendor == "mysql"
        if not (mysql or sql.has_returning(connection)):
            return self._checkpoint_orm(
                task_id, token, step, step_name, state_json, run, family, graph
            )
        error, progress_params, result = "", [], run["output"]
        if graph is not None:
            error = graph[2] if step_name else ""
            progress_params = [json.dumps(graph[0])]
            result = None if graph[1] is None else json.dumps(graph[1])
        finish = [] if step_name else [result]
        status = run.get("status", StepRunStatus.COMPLETED)
        task = [step, step_name, state_json, error, *progress_params, *finish, task_id, token]
        step_run = [
            run["index"], run["name"], run["attempt"], status,
            run["started_at"], run["finished_at"], run["output"], run["worker"],
        ]  # fmt: skip
        quote = connection.ops.quote_name
        table, runs = quote(self.model._meta.db_table), quote(_step_runs_model(self)._meta.db_table)
        shape = {"graph": graph is not None, "finish": not step_name}
        if connection.vendor == "postgresql":
            with sql.statement_cursor(connection) as cursor:
                cursor.execute(sql.checkpoint_query(table, runs, **shape), task + step_run)
                row = cursor.fetchone()
        else:
            ops, pk = connection.ops, self.model._meta.pk
            task[-2] = pk.get_db_prep_value(task_id, connection)
            step_run[4:6] = [ops.adapt_datetimefield_value(t) for t in step_run[4:6]]
            update, insert = sql.checkpoint_queries(connection.vendor, table, runs, **shape)
            with transaction.atomic(using=self.db), connection.cursor() as cursor:
                cursor.execute(update, task)
                if mysql and cursor.rowcount != 1:  # lost, or a request: the ORM path says which
                    return self._checkpoint_orm(
                        task_id, token, step, step_name, state_json, run, family, graph
                    )
                row = (None, None) if mysql else cursor.fetchone()
                if row is not None:
                    cursor.execute(insert, [task[-2], *step_run, state_json])
        if row is None:
            return Checkpoint.LOST
        if row[0]:  # PostgreSQL: whether requested; SQLite: when, or None
            return Checkpoint.CANCEL_REQUESTED
        return Checkpoint.PAUSE_REQUESTED if row[1] else Checkpoint.WRITTEN

    def _checkpoint_orm(
        self,
        task_id: uuid.UUID,
        token: str,
        step: int,
        step_name: str,
        state_json: str,
        run: dict[str, Any],
        family: bool,
        graph: tuple[dict[str, Any], Any, str] | None = None,
    ) -> Checkpoint:
        """The portable checkpoint (old SQLite; MySQL's when its statement took nothing).

        The move, then the step run.
        """
        move = transitions.CHECKPOINT if step_name else transitions.COMPLETE
        state = json.loads(state_json)
        output = run["output"]
        progress: dict[str, Any] = {"step": step, "step_name": step_name, "state": state}
        if not step_name:
            progress["return_value"] = None if output is None else json.loads(output)
        if graph is not None:
            progress["progress"] = graph[0]
            if step_name:
                progress["error"] = graph[2]
            else:
                progress["return_value"] = graph[1]
        nothing_requested = {
            "id": task_id,
            "cancel_requested_at__isnull": True,
            "pause_requested_at__isnull": True,
        }
        with transaction.atomic(using=self.db):
            result = Checkpoint.WRITTEN
            apply = functools.partial(move.apply, self, token=token, family=family, **progress)
            if not apply(where=nothing_requested):
                if not apply(where={"id": task_id}):
                    return Checkpoint.LOST
                cancelled = self.filter(id=task_id, cancel_requested_at__isnull=False).exists()
                result = Checkpoint.CANCEL_REQUESTED if cancelled else Checkpoint.PAUSE_REQUESTED
            _step_runs_model(self)._default_manager.using(self.db).create(
                task_id=task_id,
                state=state,
                **{
                    "status": StepRunStatus.COMPLETED,
                    **run,
                    "output": None if output is None else json.loads(output),
                },
            )
        return result

    def _claim_conditional(
        self, workflows: Sequence[str], token: str, lease_seconds: float, limit: int
    ) -> list[Task]:
        """The portable claim (MySQL/MariaDB, old SQLite): pick, then a conditional update.

        On MySQL and MariaDB the picked rows are locked (``sql.CLAIM_PICK_MYSQL``, ``FOR
        UPDATE SKIP LOCKED``), so workers claiming at once pick different tasks instead
        of racing for the first, then taken and read (:meth:`_claim_mysql`); on an old
        SQLite the ORM's conditional update still lets only one of them take a task.
        """
        connection = connections[self.db]
        if connection.vendor != "mysql":
            picked = self.due(workflows).values_list("id", flat=True)[:limit]
            return self._take(list(picked), token, lease_seconds)
        query = sql.claim_query(
            sql.CLAIM_PICK_MYSQL, connection, self.model, workflows=len(workflows)
        )
        with transaction.atomic(using=self.db):
            with connection.cursor() as cursor:
                cursor.execute(query, [*workflows, limit])
                ids = [row[0] for row in cursor.fetchall()]
            return self._claim_mysql(ids, token, lease_seconds, workflows)

    def _claim_mysql(
        self, ids: Sequence[Any], token: str, lease_seconds: float, workflows: Sequence[str]
    ) -> list[Task]:
        """MySQL's and MariaDB's take of ``ids`` (those still due), then their read."""
        if not ids:
            return []
        connection = connections[self.db]
        pk = self.model._meta.pk
        id_params = [pk.get_db_prep_value(i, connection) for i in ids]
        lists = {"ids": len(id_params), "workflows": len(workflows)}
        take = sql.claim_query(sql.CLAIM_TAKE_MYSQL, connection, self.model, **lists)
        read = sql.claim_query(sql.CLAIM_READ_MYSQL, connection, self.model, ids=len(id_params))
        with connection.cursor() as cursor:
            cursor.execute(take, [token, round(lease_seconds * 1_000_000), *id_params, *workflows])
            if not cursor.rowcount:
                return []
            cursor.execute(read, [*id_params, token])
            rows = cursor.fetchall()
        load = sql.row_loader(self.model, connection, sql.model_columns(self.model))
        return [load(self.db, row) for row in rows]  # type: ignore[misc]

    def _take(
        self,
        ids: Sequence[Any],
        token: str,
        lease_seconds: float,
        among: TaskQuerySet | None = None,
    ) -> list[Task]:
        """Claim those of ``ids`` (in ``among``) still pending: a conditional update; read them."""
        if not ids:
            return []
        candidates = (self if among is None else among).filter(id__in=ids)
        claimed = transitions.CLAIM.apply(candidates, claimant=token, lease_seconds=lease_seconds)
        if not claimed:
            return []
        return list(self.filter(id__in=ids, claimed_by=token, status=TaskStatus.RUNNING))


def _step_runs_model(tasks: TaskQuerySet) -> Any:
    return tasks.model._meta.get_field("step_runs").related_model


def _uuids(ids: Sequence[str | uuid.UUID]) -> list[uuid.UUID]:
    """The UUIDs of ``ids``, in order, without the strings that are not one."""
    found = []
    for value in ids:
        if isinstance(value, uuid.UUID):
            found.append(value)
            continue
        try:
            found.append(uuid.UUID(value))
        except (AttributeError, TypeError, ValueError):
            continue
    return found
