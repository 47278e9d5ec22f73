"""Tasks made in bulk, made due now, or with their lease expired, by the database's clock.

``make_due`` and ``expire_lease`` replace sleeping out a retry's backoff or a lease
in tests whose subject is something else than that timing. Both write through the
ORM with the database's ``NOW()``, as the claim and the reaper read it.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connections
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, QuerySet, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Now
from django.utils import timezone

from salvador_django.models import Task
from salvador_django.status import TaskStatus


def make_tasks(alias, count, *, status, finished_days_ago=1.0, workflow="three-steps", state="{}"):
    """Insert ``count`` tasks with one statement written by the database (100,000 in ~1 s)."""
    connection = connections[alias]
    postgres = connection.vendor == "postgresql"
    failed = status == TaskStatus.FAILED
    terminal = status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
    finished = timezone.now() - timedelta(days=finished_days_ago) if terminal else None
    numbers = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s)"
    insert = f"""
        INSERT INTO {Task._meta.db_table}
            (id, workflow, state, meta, status, step, step_name, error, attempt, recoveries,
             priority, finished_at)
    """
    new_id = {
        "postgresql": "gen_random_uuid()",
        "mysql": "replace(uuid(), '-', '')",
    }.get(connection.vendor, "lower(hex(randomblob(16)))")
    select = f"""
        SELECT {new_id},
            %s, {"CAST(%s AS jsonb)" if postgres else "%s"}, '{{}}', %s, %s, %s, %s, %s, 0, 0, %s
        FROM n
    """
    # MySQL and MariaDB take the WITH after the INSERT's columns; the others before it.
    mysql = connection.vendor == "mysql"
    sql = insert + numbers + select if mysql else numbers + insert + select
    params = [
        count,
        workflow,
        state,
        status,
        1 if failed else 0,
        "second" if failed else "first",
        "ValueError: second failed" if failed else "",
        1 if failed else 0,
        connection.ops.adapt_datetimefield_value(finished),
    ]
    with connection.cursor() as cursor:
        if mysql:  # its recursion stops at 1,000 rows unless told otherwise
            name = (
                "max_recursive_iterations"
                if connection.mysql_is_mariadb
                else "cte_max_recursion_depth"
            )
            cursor.execute(f"SET SESSION {name} = %s", [count + 1])
        cursor.execute(sql, params)


def _database_now_minus(seconds: float) -> ExpressionWrapper[Combinable]:
    return ExpressionWrapper(
        Now() - Value(timedelta(seconds=seconds), output_field=DurationField()),
        output_field=DateTimeField(),
    )


def _rows(tasks: Task | QuerySet[Task], alias: str) -> QuerySet[Task]:
    if isinstance(tasks, Task):
        return Task.objects.using(alias).filter(id=tasks.id)
    return tasks.using(alias)


def make_due(tasks: Task | QuerySet[Task], alias: str) -> int:
    """Make pending ``tasks`` (a task or a queryset) due now: their backoff is over.

    Sets ``run_after`` to the database's now, so the next claim takes them. Only the
    database changes: a Redis queue's delayed entry still waits for its time, and a
    worker's sweep announces the task before that. Returns how many tasks changed.
    """
    return _rows(tasks, alias).filter(status=TaskStatus.PENDING).update(run_after=Now())


def expire_lease(tasks: Task | QuerySet[Task], alias: str) -> int:
    """Expire the lease of running ``tasks`` (a task or a queryset) by the database's clock.

    Sets ``lease_expires_at`` a second in the past, so the next sweep's reaper returns
    them to pending as it would once their worker's lease ran out. Returns how many
    tasks changed.
    """
    rows = _rows(tasks, alias).filter(status=TaskStatus.RUNNING)
    return rows.update(lease_expires_at=_database_now_minus(1))
