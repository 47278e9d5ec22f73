"""History for the scale benchmark: finished tasks bulk-inserted into the task table.

A real deployment keeps months of completed and failed tasks. The claim must not
slow down as they pile up: it reads a partial index of pending tasks only. To show
it, :func:`seed_history` adds finished tasks (90% completed with their three step
runs, 10% failed at step two with a failed attempt) server-side, in one statement
per table, and :func:`claim_latency` times the claim over whatever the table holds.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

HISTORY_WORKFLOW = "bench-history"  # not registered: finished tasks are never run again

# Task columns filled by the seed; the others are nullable or have a database default.
_COLUMNS = (
    "id, workflow, body, state, meta, status, step, step_name, error, attempt, recoveries, "
    "priority, run_after, created_at, updated_at, started_at, finished_at"
)

_SEED_TASKS_POSTGRESQL = f"""
INSERT INTO {{task}} ({_COLUMNS})
SELECT gen_random_uuid(), %(workflow)s, jsonb_build_object('i', g), jsonb_build_object(),
    jsonb_build_object(),
    CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'completed' END,
    CASE WHEN g %% 10 = 0 THEN 1 ELSE 3 END,
    CASE WHEN g %% 10 = 0 THEN 'two' ELSE '' END,
    CASE WHEN g %% 10 = 0 THEN 'RuntimeError: seeded failure' ELSE '' END,
    0, 0, 0, at, at, at + interval '10 ms', at, at + interval '10 ms'
FROM generate_series(%(first)s::bigint, %(last)s) AS g,
    LATERAL (SELECT now() - make_interval(secs => 86400 * 30 * random() + g * 0) AS at) AS t
"""

_SEED_TASKS_SQLITE = f"""
WITH RECURSIVE g(n) AS (SELECT %(first)s UNION ALL SELECT n + 1 FROM g WHERE n < %(last)s)
INSERT INTO {{task}} ({_COLUMNS})
SELECT lower(hex(randomblob(16))), %(workflow)s, json_object('i', n), json_object(), json_object(),
    CASE WHEN n %% 10 = 0 THEN 'failed' ELSE 'completed' END,
    CASE WHEN n %% 10 = 0 THEN 1 ELSE 3 END,
    CASE WHEN n %% 10 = 0 THEN 'two' ELSE '' END,
    CASE WHEN n %% 10 = 0 THEN 'RuntimeError: seeded failure' ELSE '' END,
    0, 0, 0, at, at, at, at, at
FROM (SELECT n, strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now',
        '-' || (abs(random()) %% 2592000) || ' seconds') AS at FROM g)
"""

# MariaDB's recursion stops at max_recursive_iterations (1,000 by default): seed_history
# raises it for its session. Ids are CHAR(32) hex there. The times spread over 30 days by
# CRC32 of the row's number, not RAND(): merged into the outer query, t's RAND() could
# differ between the five columns that read ``at``.
_SEED_TASKS_MARIADB = f"""
INSERT INTO {{task}} ({_COLUMNS})
WITH RECURSIVE g(n) AS (SELECT %(first)s UNION ALL SELECT n + 1 FROM g WHERE n < %(last)s),
    t AS (SELECT n, UTC_TIMESTAMP(6) - INTERVAL (CRC32(n) %% 2592000) SECOND AS at FROM g)
SELECT replace(uuid(), '-', ''), %(workflow)s, JSON_OBJECT('i', n), JSON_OBJECT(),
    JSON_OBJECT(),
    CASE WHEN n %% 10 = 0 THEN 'failed' ELSE 'completed' END,
    CASE WHEN n %% 10 = 0 THEN 1 ELSE 3 END,
    CASE WHEN n %% 10 = 0 THEN 'two' ELSE '' END,
    CASE WHEN n %% 10 = 0 THEN 'RuntimeError: seeded failure' ELSE '' END,
    0, 0, 0, at, at, at + INTERVAL 10000 MICROSECOND, at, at + INTERVAL 10000 MICROSECOND
FROM t
"""

# One step run per completed step, and the failed attempt of each failed task.
# {new} selects the tasks just seeded.
_SEED_STEP_RUNS = """
INSERT INTO {step_run} (
    task_id, {index}, name, attempt, status, started_at, finished_at, error, traceback,
    output, worker
)
SELECT t.id, s.i, s.name, 1,
    CASE WHEN t.status = 'failed' AND s.i = t.step THEN 'failed' ELSE 'completed' END,
    t.started_at, t.finished_at,
    CASE WHEN t.status = 'failed' AND s.i = t.step THEN t.error ELSE '' END,
    '', NULL, 'seed'
FROM {task} AS t
JOIN (SELECT 0 AS i, 'one' AS name UNION ALL SELECT 1, 'two' UNION ALL SELECT 2, 'three') AS s
    ON s.i < t.step + CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END
WHERE t.workflow = %(workflow)s AND {new}
"""


def _tables(connection: Any) -> dict[str, str]:
    from salvador_django.models import StepRun, Task

    quote = connection.ops.quote_name
    return {
        "task": quote(Task._meta.db_table),
        "step_run": quote(StepRun._meta.db_table),
        "index": quote("index"),
    }


def history_size() -> int:
    """How many seeded history tasks the table holds."""
    from salvador_django.models import Task

    return Task.objects.filter(workflow=HISTORY_WORKFLOW).count()


def seed_history(rows: int) -> float:
    """Add ``rows`` finished history tasks and their step runs; returns the seconds taken."""
    from django.db import connection, transaction

    if rows <= 0:
        return 0.0
    first = history_size() + 1
    params: dict[str, Any] = {
        "workflow": HISTORY_WORKFLOW,
        "first": first,
        "last": first + rows - 1,
    }
    tables = _tables(connection)
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_SEED_TASKS_POSTGRESQL.format(**tables), params)
            new = "(t.body ->> 'i')::bigint >= %(first)s"
        elif connection.vendor == "mysql":
            cursor.execute("SET SESSION max_recursive_iterations = %s", [rows + 1])
            cursor.execute(_SEED_TASKS_MARIADB.format(**tables), params)
            new = "CAST(JSON_VALUE(t.body, '$.i') AS UNSIGNED) >= %(first)s"
        else:
            cursor.execute(f"SELECT coalesce(max(rowid), 0) FROM {tables['task']}")
            params["rowid"] = cursor.fetchone()[0]
            cursor.execute(_SEED_TASKS_SQLITE.format(**tables), params)
            new = "t.rowid > %(rowid)s"
        cursor.execute(_SEED_STEP_RUNS.format(new=new, **tables), params)
    settle()
    return time.perf_counter() - began


def analyze() -> None:
    """Refresh the planner's statistics, as autovacuum would after a bulk load."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            from salvador_django.models import StepRun, Task

            tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (Task, StepRun))
            cursor.execute(f"ANALYZE TABLE {tables}")
            cursor.fetchall()
            return
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def settle() -> None:
    """Bring the database to the steady state of a table that grew over months.

    After the statistics, PostgreSQL writes the bulk load's dirty pages out now
    (``CHECKPOINT``; a superuser's right, skipped without it), so that its checkpoint
    does not land in the middle of the next measurement. SQLite folds its WAL back.
    MariaDB has no statement for it (InnoDB flushes in the background): statistics only.
    """
    from django.db import DatabaseError, connection, transaction

    analyze()
    if connection.vendor == "mysql":
        return
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        try:
            with transaction.atomic():
                cursor.execute("CHECKPOINT")
        except DatabaseError:
            pass  # not a superuser: the server checkpoints on its own schedule


def delete_workflow_tasks(workflow: str) -> None:
    """Delete every task of ``workflow`` and its step runs."""
    from salvador_django.models import StepRun, Task

    StepRun.objects.filter(task__workflow=workflow).delete()
    Task.objects.filter(workflow=workflow).delete()


def claim_latency(workflow: str, samples: int, lease_seconds: float = 60.0) -> dict[str, float]:
    """Median and p95 (ms) of claiming one due task of ``workflow``, ``samples`` times.

    Each claim is the statement a worker runs (``Task.objects.claim``), in its own
    transaction; at least ``samples`` due tasks of ``workflow`` must be waiting.
    """
    from benchmarks.servers import percentile
    from salvador_django.models import Task

    durations = []
    for _ in range(samples):
        token = f"bench-claim:{uuid.uuid4().hex[:12]}"
        began = time.perf_counter()
        claimed = Task.objects.claim([workflow], token, lease_seconds, 1)
        durations.append((time.perf_counter() - began) * 1000)
        if len(claimed) != 1:
            raise RuntimeError(f"claim latency: a claim took {len(claimed)} task(s), not 1")
    return {"p50": statistics.median(durations), "p95": percentile(durations, 95)}
