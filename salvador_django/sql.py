"""The SQL that differs by database: the claim and checkpoint statements, one seam.

Everything else goes through the ORM. Each statement is written once with ``<now>``,
``<lease>`` and ``<take>`` tokens filled per database; ``{table}``, ``{workflows}``,
``{ids}`` and ``{async_commit}`` are filled per call. A database without its own
statements here (MySQL, an old SQLite) takes the portable ORM path of the queryset.
"""

from __future__ import annotations

import functools
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, models

try:
    import psycopg
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.postgres import types as postgres_types
except ImportError:  # psycopg 2, or no PostgreSQL at all
    psycopg = None  # type: ignore[assignment]

RowLoader = Callable[[str, Sequence[Any]], models.Model]
_row_loaders: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], RowLoader]] = (
    weakref.WeakKeyDictionary()
)


def row_loader(model: type[models.Model], connection: Any, columns: tuple[str, ...]) -> RowLoader:
    """A function making a ``model`` instance of a row of its table's ``columns``.

    The claim runs once per task, so it skips ``RawQuerySet``, which resolves the
    columns and the converters again for every query: here they are worked out once
    per connection and column list.
    """
    loaders = _row_loaders.setdefault(connection, {})
    if columns in loaders:
        return loaders[columns]
    fields = model._meta.concrete_fields
    position = {column: index for index, column in enumerate(columns)}
    order = [position[str(field.column)] for field in fields]
    converters = []
    for index, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converters.append((index, col, found))
    attnames = [field.attname for field in fields]

    def load(db: str, row: Sequence[Any]) -> models.Model:
        values = [row[i] for i in order]
        for index, col, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], col, connection)
        return model.from_db(db, attnames, values)

    loaders[columns] = load
    return load


def statement_cursor(connection: Any) -> Any:
    """A cursor for the claim and checkpoint statements, wrapped as Django's are.

    Where the connection lets psycopg prepare statements (PostgreSQL with psycopg 3
    and Django's ``OPTIONS["prepare_threshold"]`` set; Django leaves it off, for
    transaction-pooling proxies), a cursor that binds parameters on the server, so
    that psycopg prepares each statement once per connection and PostgreSQL keeps
    its plan instead of parsing and planning it for every step. Elsewhere,
    ``connection.cursor()``: without preparing, binding on the server costs the
    server more than Django's client-side binding costs the worker.
    """
    if (
        connection.vendor != "postgresql"
        or psycopg is None
        or connection.settings_dict["OPTIONS"].get("prepare_threshold") is None
    ):
        return connection.cursor()  # Django's default: nothing to prepare, no more work
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw_connection = connection.connection
    if getattr(raw_connection, "prepare_threshold", None) is None:
        return connection.cursor()
    with connection.wrap_database_errors:
        raw = psycopg.Cursor(raw_connection)
        _match_time_zone(connection, raw)
    connection.validate_thread_sharing()
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


def _match_time_zone(connection: Any, cursor: Any) -> None:
    """Load timestamps in the connection's time zone, as Django's own cursors do."""
    loader = connection.connection.adapters.get_loader(
        postgres_types["timestamptz"].oid, psycopg.pq.Format.TEXT
    )
    if connection.timezone != getattr(loader, "timezone", None):
        register_tzloader(connection.timezone, cursor)


def claim_query(template: str, connection: Any, model: type[models.Model], **lists: int) -> str:
    """One of the claim statements below, ready to run on ``connection``.

    It returns the model's columns in field order (:func:`model_columns`), named,
    so the rows load without reading the cursor's description; ``lists`` gives the
    length of each ``IN`` list. Built once per statement, database and list lengths.
    """
    committing = async_commit(connection)
    key = (template, connection.vendor, model, committing, *sorted(lists.items()))
    query = _claim_queries.get(key)
    if query is None:
        quote = connection.ops.quote_name
        # PostgreSQL's claim joins its candidates, whose "id" would be ambiguous.
        qualifier = "t." if "AS t" in template else ""
        query = template.format(
            table=quote(model._meta.db_table),
            async_commit=committing,
            returning=", ".join(qualifier + quote(column) for column in model_columns(model)),
            **{name: ", ".join(["%s"] * count) for name, count in lists.items()},
        )
        _claim_queries[key] = query
    return query


_claim_queries: dict[tuple[Any, ...], str] = {}


@functools.cache
def model_columns(model: type[models.Model]) -> tuple[str, ...]:
    """The columns of ``model``'s concrete fields, in field order."""
    return tuple(str(field.column) for field in model._meta.concrete_fields)


# <take> is what every claim writes (transitions.CLAIM): parameters token, lease.
TAKE = """
    SET status = 'running', claimed_by = %s,
        lease_expires_at = <lease>,
        started_at = COALESCE(started_at, <now>),
        updated_at = <now>
"""


def _dialect(template: str, *, now: str, lease: str) -> str:
    return template.replace("<take>", TAKE).replace("<lease>", lease).replace("<now>", now)


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
CLAIM_POSTGRESQL = _postgresql("""
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
    RETURNING {returning}
""")

# SQLite runs one writer at a time, so the statement itself is the lock.
# Parameters: token, lease modifier, workflows..., limit.
# INDEXED BY: SQLite's planner would otherwise take the admin's workflow index and
# sort every task of the workflow on each claim.
CLAIM_SQLITE = _sqlite("""
    UPDATE {table} <take>
    WHERE id IN (
        SELECT id FROM {table} INDEXED BY salvador_task_due
        WHERE status = 'pending' AND run_after <= <now> AND workflow IN ({workflows})
        ORDER BY priority DESC, run_after
        LIMIT %s
    )
    RETURNING {returning}
""")


def _mysql(template: str) -> str:
    # The lease parameter is in microseconds: MySQL rounds a fractional SECOND interval.
    return _dialect(template, now="NOW(6)", lease="NOW(6) + INTERVAL %s MICROSECOND")


# MySQL and MariaDB have no RETURNING on an UPDATE: the claim picks the due tasks and
# locks them (SKIP LOCKED: workers claiming at once pick different ones), takes them
# and reads them, in one transaction. The index is forced as SQLite's is: with few rows
# per workflow the planner would read the workflow's index and sort, and with a long
# history of that workflow read all of it.
# Parameters: workflows..., limit.
CLAIM_PICK_MYSQL = """
    SELECT id FROM {table} FORCE INDEX (salvador_task_due)
    WHERE status = 'pending' AND run_after <= NOW(6) AND workflow IN ({workflows})
    ORDER BY priority DESC, run_after
    LIMIT %s
    FOR UPDATE SKIP LOCKED
"""

# MySQL's and MariaDB's take of the picked ids (or the Redis queue's), then the read of
# what it took. Parameters: token, lease (µs), ids..., workflows...; then ids..., token.
CLAIM_TAKE_MYSQL = _mysql("""
    UPDATE {table} <take>
    WHERE id IN ({ids}) AND status = 'pending' AND run_after <= <now>
      AND workflow IN ({workflows})
""")
CLAIM_READ_MYSQL = """
    SELECT {returning} FROM {table}
    WHERE id IN ({ids}) AND claimed_by = %s AND status = 'running'
"""

# Claims by id (the Redis queue). Parameters: token, lease, ids..., workflows...; an id
# of a workflow the caller does not serve claims nothing. On SQLite the ids
# are 32 hex digits without dashes, as Django stores UUIDs there.
_CLAIM_IDS = """
    UPDATE {table} <take>
    WHERE id IN ({ids}) AND status = 'pending' AND run_after <= <now>
      AND workflow IN ({workflows}) {async_commit}
    RETURNING {returning}
"""
CLAIM_IDS_POSTGRESQL = _postgresql(_CLAIM_IDS)
CLAIM_IDS_SQLITE = _sqlite(_CLAIM_IDS)

# A claim needs no durable commit: if the server loses it in a crash, the task is
# simply pending again at the same step, which is what an expired lease gives too. So
# a claim made in its own transaction (autocommit) does not wait for the WAL flush.
# set_config() runs for each row the claim takes, so only a claim that writes sets it.
_ASYNC_COMMIT_POSTGRESQL = "AND set_config('synchronous_commit', 'off', true) IS NOT NULL"


def async_commit(connection: Any) -> str:
    """The claim's async-commit clause: PostgreSQL, and only in a transaction of its own."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _ASYNC_COMMIT_POSTGRESQL
    return ""


# A checkpoint in one statement, so one round trip and one commit: the fenced task
# update, and the step run inserted only if the update found the claim. The state is
# sent and parsed once: the step run records the task's new one.
CHECKPOINT_POSTGRESQL = """
    WITH task AS (
        UPDATE {table}
        SET step = %s, step_name = %s, state = %s::jsonb, attempt = 0,{recoveries}
            error = %s, updated_at = STATEMENT_TIMESTAMP(){graph}{finish}
        WHERE id = %s AND claimed_by = %s AND status = 'running'
        RETURNING id, state, cancel_requested_at, pause_requested_at
    ), run AS (
        INSERT INTO {runs}
            (task_id, "index", name, attempt, status, started_at, finished_at,
             error, traceback, output, worker, state)
        SELECT id, %s, %s, %s, %s, %s, %s, '', '', %s::jsonb, %s, state FROM task
        RETURNING id
    )
    SELECT task.cancel_requested_at IS NOT NULL, task.pause_requested_at IS NOT NULL
    FROM task, run
"""
#: A checkpoint that does not finish the task starts the next step's count of lease
#: expiries (the last step's stay counted: a one-step task's lost attempts).
RESET_RECOVERIES_POSTGRESQL = " recoveries = 0,"
#: A graph task's checkpoint writes its progress too.
GRAPH_POSTGRESQL = ", progress = %s::jsonb"
FINISH_POSTGRESQL = """,
            status = 'completed', finished_at = STATEMENT_TIMESTAMP(), return_value = %s::jsonb,
            claimed_by = NULL, lease_expires_at = NULL"""


@functools.cache
def checkpoint_query(table: str, runs: str, *, graph: bool, finish: bool) -> str:
    """The PostgreSQL checkpoint of ``table`` and its step runs ``runs`` (quoted names).

    ``graph`` writes a graph task's progress; ``finish`` completes the task.
    """
    return CHECKPOINT_POSTGRESQL.format(
        table=table,
        runs=runs,
        graph=GRAPH_POSTGRESQL if graph else "",
        finish=FINISH_POSTGRESQL if finish else "",
        recoveries="" if finish else RESET_RECOVERIES_POSTGRESQL,
    )


# SQLite has no data-modifying CTE: the checkpoint there is two statements in one
# transaction (one commit), the fenced update, then the step run only if it found the
# claim. Parameters as PostgreSQL's, the step run's (without the state) apart. It
# returns the request columns themselves: SQLite 3.40 evaluates ``x IS NOT NULL`` in a
# RETURNING clause as true for a NULL column.
CHECKPOINT_SQLITE = _sqlite("""
    UPDATE {table}
    SET step = %s, step_name = %s, state = %s, attempt = 0,{recoveries}
        error = %s, updated_at = <now>{graph}{finish}
    WHERE id = %s AND claimed_by = %s AND status = 'running'
    RETURNING cancel_requested_at, pause_requested_at
""")
STEP_RUN_SQLITE = """
    INSERT INTO {runs}
        (task_id, "index", name, attempt, status, started_at, finished_at,
         error, traceback, output, worker, state)
    VALUES (%s, %s, %s, %s, %s, %s, %s, '', '', %s, %s, %s)
"""
RESET_RECOVERIES_SQLITE = RESET_RECOVERIES_POSTGRESQL
GRAPH_SQLITE = ", progress = %s"
FINISH_SQLITE = _sqlite(""",
            status = 'completed', finished_at = <now>, return_value = %s,
            claimed_by = NULL, lease_expires_at = NULL""")


# MySQL and MariaDB: the SQLite checkpoint's two statements, without RETURNING. The
# update takes only a task nobody asked to cancel or pause: one it does not take (the
# claim lost, or a request to read) goes to the portable path, which tells which.
# Every assignment is a parameter or a constant: MySQL's left-to-right SET reads no
# column another assignment changed.
CHECKPOINT_MYSQL = """
    UPDATE {table}
    SET step = %s, step_name = %s, state = %s, attempt = 0,{recoveries}
        error = %s, updated_at = NOW(6){graph}{finish}
    WHERE id = %s AND claimed_by = %s AND status = 'running'
      AND cancel_requested_at IS NULL AND pause_requested_at IS NULL
"""
STEP_RUN_MYSQL = STEP_RUN_SQLITE.replace('"index"', "`index`")
FINISH_MYSQL = """,
            status = 'completed', finished_at = NOW(6), return_value = %s,
            claimed_by = NULL, lease_expires_at = NULL"""


#: The two-statement checkpoints, by vendor: the update, its finishing part, the insert.
_CHECKPOINTS = {
    "sqlite": (CHECKPOINT_SQLITE, FINISH_SQLITE, STEP_RUN_SQLITE),
    "mysql": (CHECKPOINT_MYSQL, FINISH_MYSQL, STEP_RUN_MYSQL),
}


@functools.cache
def checkpoint_queries(
    vendor: str, table: str, runs: str, *, graph: bool, finish: bool
) -> tuple[str, str]:
    """SQLite's or MySQL's fenced checkpoint update of ``table``, and its insert into ``runs``.

    See :func:`checkpoint_query`; built once per shape.
    """
    update, finishing, insert = _CHECKPOINTS[vendor]
    filled = update.format(
        table=table,
        graph=GRAPH_SQLITE if graph else "",
        finish=finishing if finish else "",
        recoveries="" if finish else RESET_RECOVERIES_SQLITE,
    )
    return filled, insert.format(runs=runs)


def has_returning(connection: Any) -> bool:
    """Whether the claim and checkpoint statements here serve ``connection``."""
    return connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)
    )


# A waiting parent's count of unfinished awaited children, moved by ``delta`` (and by
# a child's end only if that child is awaited); returns the count, so that only the
# child that takes it to zero makes a second statement (the parent's ``WAKE``).
# Parameters: delta, parent id[, child id].
_COUNT_CHILDREN = """
    UPDATE {table} SET children_left = children_left + %s
    WHERE id = %s AND children_left IS NOT NULL {awaited}
    RETURNING children_left
"""
_CHILD_AWAITED = "AND EXISTS (SELECT 1 FROM {table} AS child WHERE child.id = %s AND child.awaited)"
#: What :func:`count_children` returns where it has no statement (MySQL, old SQLite).
UNKNOWN = object()


def count_children(tasks: Any, parent_id: Any, delta: int, child_id: Any = None) -> Any:
    """Run the count-down on ``tasks``' database: the new count, None if nothing counted.

    ``UNKNOWN`` where the database has no ``RETURNING`` here: the caller uses the ORM.
    """
    connection = connections[tasks.db]
    if not has_returning(connection):
        return UNKNOWN
    table = connection.ops.quote_name(tasks.model._meta.db_table)
    pk = tasks.model._meta.pk
    params = [delta, pk.get_db_prep_value(parent_id, connection)]
    awaited = ""
    if child_id is not None:
        awaited = _CHILD_AWAITED.format(table=table)
        params.append(pk.get_db_prep_value(child_id, connection))
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_CHILDREN.format(table=table, awaited=awaited), params)
        row = cursor.fetchone()
    return None if row is None else row[0]
