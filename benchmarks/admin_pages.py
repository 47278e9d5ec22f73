"""Time the Django admin's task pages on a PostgreSQL table of a million tasks.

Usage (from the repository root)::

    .venv/bin/python benchmarks/admin_pages.py [--tasks 1000000] [--seed | --no-seed]
        [--requests 20] [--json PATH]

This is a benchmark, not a test: it prints figures, and exits non-zero only when a
page did not answer 200 (the overview page may be missing: it is then reported as
not available).

Database. ``benchmarks.admin_settings``: the database ``salvador_admin_bench`` on
``SALVADOR_BENCH_PG_HOST``/``_PORT``/``_USER`` (default 127.0.0.1:5432, postgres).
Seeding (``--seed``; by default only when the table does not hold exactly ``--tasks``
tasks) drops and recreates it, migrates it with a ``python -m django migrate``
subprocess, then fills it server-side with ``INSERT ... SELECT ... FROM
generate_series()``: tasks of the workflows ``bench`` (``benchmarks.workflows``) and
``charge-card``, ``send-invoice``, ``sync-crm`` (``benchmarks.admin_workflows``),
created over the last 90 days, about 90% completed, 5% failed, 3% pending, 1% running
and 1% cancelled; step runs for every failed task (its earlier steps, then three
failed attempts of the failing step) and for one completed task in ten. Then
``VACUUM ANALYZE``, as autovacuum would soon do. Every seed writes the same rows (ids
are the md5 of the row number, ``setseed()`` fixes ``random()``). Without seeding the
database is still migrated, so the indexes of the code under test are there.

Measuring. A superuser logged in with ``django.test.Client.force_login`` requests
each page once to warm up, once under ``CaptureQueriesContext`` to count its queries
and find the slowest, then ``--requests`` times to time it (median, p95). Pages: the
task list unfiltered, filtered by status ``failed`` and by a workflow, searched for
``declined`` (an error text), a failed task's change page, the overview
``/admin/salvador/overview/`` (its charts read the hourly roll-up, its stuck panel
counts the tasks past their lease, long due and long waiting) and the workers page.
For context, the same run times two raw queries on the task table through the
database cursor: the newest 100 rows (``SELECT * ... ORDER BY created_at DESC LIMIT
100``) and ``SELECT COUNT(*)``.

Roll-up. Before the pages, the hourly statistics are deleted and rolled up from
scratch (``salvador_django.rollup.roll_up``: the seven days of its horizon), then
rolled up again (the two hours it rechecks at every run, what it does every five
minutes), and called once more within those five minutes (it then does nothing, as
at most of the workers' sweeps); all three are timed, and the plans of the two queries of one
hour are printed (``EXPLAIN ANALYZE``). Eight worker rows (two gone) are written for
the workers page when there are none.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import django
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import NOT_PROVIDED, Count
from django.test import Client
from django.test.utils import CaptureQueriesContext

# The project's modules are imported where they are used: the models once main() has
# called django.setup(), benchmarks.* once main() has put the repository on sys.path.

REPO = Path(__file__).resolve().parent.parent
SETTINGS = "benchmarks.admin_settings"
PG_DB = os.environ.get("SALVADOR_ADMIN_BENCH_DB", "salvador_admin_bench")
ADMIN_USER = "bench-admin"
#: Share of the seeded tasks of each workflow, in tenths.
WORKFLOW_SHARES = {"charge-card": 5, "bench": 2, "send-invoice": 2, "sync-crm": 1}
#: The error of a failed task of each workflow; the seed appends the customer.
ERRORS = {
    "charge-card": "ValueError: card declined by the issuer",
    "bench": "RuntimeError: step failed",
    "send-invoice": "SMTPRecipientsRefused: mailbox unavailable",
    "sync-crm": "TimeoutError: the CRM did not answer within 30 s",
}
FILTERED_WORKFLOW = "sync-crm"
SEARCH = "declined"

Result = dict[str, Any]

TASK_COLUMNS = (
    "id", "workflow", "body", "state", "meta", "status", "step", "step_name", "error",
    "attempt", "recoveries", "priority", "run_after", "idempotency_key", "claimed_by",
    "lease_expires_at", "created_at", "updated_at", "started_at", "finished_at",
)  # fmt: skip

# The values of TASK_COLUMNS, in that order. Row g (1..n) is created (n - g) / n of
# 90 days ago, so the newest rows are also the last written, as in a real table.
TASKS_SQL = """
WITH workflows AS (
    SELECT name, string_to_array(steps, ',') AS steps, error
    FROM unnest(%(names)s::text[], %(steps)s::text[], %(errors)s::text[])
        AS w (name, steps, error)
), seeded AS (
    SELECT g, random() AS r, (%(slots)s::text[])[1 + mod(g, 10)] AS workflow,
        now() - make_interval(secs => (%(n)s - g) * 90 * 86400.0 / %(n)s) AS created_at
    FROM generate_series(1::bigint, %(n)s) AS g
), classified AS (
    SELECT seeded.*, w.steps, w.error,
        CASE WHEN r < 0.90 THEN 'completed' WHEN r < 0.95 THEN 'failed'
            WHEN r < 0.98 THEN 'pending' WHEN r < 0.99 THEN 'running'
            ELSE 'cancelled' END AS status
    FROM seeded JOIN workflows AS w ON w.name = seeded.workflow
), timed AS (
    SELECT classified.*,
        CASE WHEN status = 'completed' THEN cardinality(steps)
            WHEN status IN ('failed', 'running') THEN mod(g, cardinality(steps))
            ELSE 0 END AS step,
        CASE WHEN status IN ('completed', 'failed', 'running')
            THEN created_at + interval '0.2 seconds' END AS started_at,
        CASE WHEN status IN ('completed', 'failed')
                THEN created_at + make_interval(secs => 1 + cardinality(steps))
            WHEN status = 'cancelled' THEN created_at + interval '1 hour' END AS finished_at
    FROM classified
)
INSERT INTO {task} ({columns})
SELECT
    md5('task-' || g)::uuid,
    workflow,
    jsonb_build_object('order', g, 'amount_cents', 100 + mod(g * 7919, 50000)),
    CASE WHEN status = 'completed' THEN jsonb_build_object('receipt', 'r-' || g)
        ELSE jsonb_build_object() END,
    jsonb_build_object('customer', 'c-' || mod(g * 31, 50000)),
    status,
    step,
    CASE WHEN status = 'completed' THEN '' ELSE steps[step + 1] END,
    CASE WHEN status = 'failed'
        THEN error || ' (customer c-' || mod(g * 31, 50000) || ')' ELSE '' END,
    CASE status WHEN 'failed' THEN 3 WHEN 'running' THEN 1 ELSE 0 END,
    0,
    CASE WHEN mod(g, 50) = 0 THEN 10 ELSE 0 END,
    created_at,
    CASE WHEN mod(g, 5) = 0 THEN 'order-' || g END,
    CASE WHEN status = 'running' THEN 'worker-' || mod(g, 8) END,
    CASE WHEN status = 'running' THEN now() + interval '60 seconds' END,
    created_at,
    coalesce(finished_at, started_at, created_at),
    started_at,
    finished_at
FROM timed
"""

# Step runs of every failed task (completed earlier steps, then three failed attempts
# of the failing step) and of one completed task in ten (each step once).
STEP_RUNS_SQL = """
WITH workflows AS (
    SELECT name, string_to_array(steps, ',') AS steps
    FROM unnest(%(names)s::text[], %(steps)s::text[]) AS w (name, steps)
)
INSERT INTO {step_run} (
    task_id, "index", name, attempt, status, started_at, finished_at,
    error, traceback, output, worker
)
SELECT
    t.id,
    s.i - 1,
    w.steps[s.i],
    a.n,
    CASE WHEN f.failing THEN 'failed' ELSE 'completed' END,
    t.started_at + make_interval(secs => s.i - 1 + 0.3 * (a.n - 1)),
    t.started_at + make_interval(secs => s.i - 0.75 + 0.3 * (a.n - 1)),
    CASE WHEN f.failing THEN t.error ELSE '' END,
    CASE WHEN f.failing THEN concat_ws(
        chr(10),
        'Traceback (most recent call last):',
        '  File "/srv/app/workflows.py", line 42, in ' || w.steps[s.i],
        '    gateway.call(task.body)',
        t.error
    ) ELSE '' END,
    CASE WHEN f.failing THEN NULL ELSE jsonb_build_object('ok', true) END,
    'worker-' || a.n
FROM {task} AS t
JOIN workflows AS w ON w.name = t.workflow
CROSS JOIN LATERAL generate_series(1, t.step + (t.status = 'failed')::int) AS s (i)
CROSS JOIN LATERAL (SELECT t.status = 'failed' AND s.i = t.step + 1 AS failing) AS f
CROSS JOIN LATERAL generate_series(1, CASE WHEN f.failing THEN 3 ELSE 1 END) AS a (n)
WHERE t.status = 'failed'
    OR (t.status = 'completed' AND mod((t.body ->> 'order')::bigint, 10) = 0)
"""


# --------------------------------------------------------------------------- helpers


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median and p95 of durations given in seconds, in milliseconds."""
    from benchmarks.servers import percentile

    ms = [s * 1000 for s in seconds]
    return {"median_ms": statistics.median(ms), "p95_ms": percentile(ms, 95)}


def repeat(action: Callable[[], object], times: int) -> list[float]:
    """The duration in seconds of each of ``times`` calls of ``action``."""
    durations = []
    for _ in range(times):
        began = time.perf_counter()
        action()
        durations.append(time.perf_counter() - began)
    return durations


def short_sql(sql: str) -> str:
    """``sql`` with a long select list shown as ``...``, to print it on a few lines."""
    return re.sub(r"^SELECT ((?:(?! FROM ).){80,}) FROM ", "SELECT ... FROM ", sql)


# --------------------------------------------------------------------------- seeding


def existing_tasks(table: str) -> int | None:
    """How many tasks the benchmark database holds: None without database or table."""
    from benchmarks.servers import pg_connect

    with pg_connect("postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DB]).fetchone():
            return None
    with pg_connect(PG_DB) as conn:
        if conn.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None:
            return None
        return int(conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])


def migrate() -> float:
    """Migrate the benchmark database in a subprocess; returns its duration in seconds."""
    pythonpath = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PYTHONPATH": str(REPO) + (os.pathsep + pythonpath if pythonpath else ""),
    }
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
        env=env,
        cwd=REPO,
        check=True,
    )
    return time.perf_counter() - began


def unseeded_columns() -> list[str]:
    """NOT NULL columns of the task table, without a database default, that the seed omits."""
    from salvador_django.models import Task

    required = {
        field.column
        for field in Task._meta.concrete_fields
        if field.column and not field.null and field.db_default is NOT_PROVIDED
    }
    return sorted(required - set(TASK_COLUMNS))


def seed(tasks: int) -> Result:
    """Recreate, migrate and fill the benchmark database; returns the durations (s)."""
    from benchmarks import admin_workflows  # noqa: F401 - registers them, as the URLconf does
    from benchmarks.servers import recreate_database
    from salvador_django.definitions import registry
    from salvador_django.models import StepRun, Task

    missing = unseeded_columns()
    if missing:
        raise SystemExit(f"the seed does not fill the NOT NULL column(s) {', '.join(missing)}")
    seconds: Result = {}
    began = time.perf_counter()
    connection.close()
    recreate_database(PG_DB)
    migrate()
    seconds["create and migrate"] = time.perf_counter() - began

    names = list(WORKFLOW_SHARES)
    params: dict[str, Any] = {
        "names": names,
        "steps": [",".join(step.name for step in registry.get(name).steps) for name in names],
        "errors": [ERRORS[name] for name in names],
        "slots": [name for name, share in WORKFLOW_SHARES.items() for _ in range(share)],
        "n": tasks,
    }
    quote = connection.ops.quote_name
    tables = {"task": quote(Task._meta.db_table), "step_run": quote(StepRun._meta.db_table)}
    statements = [
        ("tasks", TASKS_SQL.format(columns=", ".join(map(quote, TASK_COLUMNS)), **tables), params),
        ("step runs", STEP_RUNS_SQL.format(**tables), params),
        ("vacuum analyze", "VACUUM ANALYZE", None),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        for label, sql, values in statements:
            began = time.perf_counter()
            cursor.execute(sql, values)
            seconds[label] = time.perf_counter() - began
    seconds["total"] = sum(seconds.values())
    return seconds


# --------------------------------------------------------------------------- measuring


def database_facts() -> Result:
    """The server version and the size of what the pages read."""
    from salvador_django.models import StepRun, Task

    table = Task._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        cursor.execute("SELECT pg_total_relation_size(%s), pg_relation_size(%s)", [table, table])
        total, heap = cursor.fetchone()
    by_status = dict(Task.objects.order_by().values_list("status").annotate(n=Count("*")))
    return {
        "postgresql": version,
        "django": django.get_version(),
        "tasks": sum(by_status.values()),
        "tasks_by_status": by_status,
        "step_runs": StepRun.objects.count(),
        "task_table_mb": heap / 2**20,
        "task_table_with_indexes_mb": total / 2**20,
    }


def measure_raw(requests: int) -> list[Result]:
    """Time the newest 100 rows and ``COUNT(*)`` of the task table through a cursor."""
    from salvador_django.models import Task

    table = connection.ops.quote_name(Task._meta.db_table)
    queries = {
        "newest 100 rows": f"SELECT * FROM {table} ORDER BY created_at DESC LIMIT 100",
        "COUNT(*) of the table": f"SELECT COUNT(*) FROM {table}",
    }
    results = []
    with connection.cursor() as cursor:

        def run(sql: str) -> None:
            cursor.execute(sql)
            cursor.fetchall()

        for label, sql in queries.items():
            run(sql)  # warm-up
            seconds = repeat(functools.partial(run, sql), requests)
            results.append({"query": label, "sql": sql, **summary_ms(seconds)})
    return results


def why_not_200(response: Any) -> str:
    """What went wrong with a response whose status is not 200."""
    exc_info = getattr(response, "exc_info", None)
    if exc_info:
        return f"{type(exc_info[1]).__name__}: {exc_info[1]}"
    if response.status_code in (301, 302):
        return f"redirected to {response['Location']}"
    return f"status {response.status_code}"


def measure_page(
    client: Client, name: str, urls: Sequence[str], requests: int, optional: bool = False
) -> Result:
    """Time the first of ``urls`` that answers 200; count and rank its queries.

    With ``optional``, a page that answers 404 is reported as not available, not failed.
    """
    for url in urls:
        response = client.get(url)  # the warm-up, and the choice of URL
        if response.status_code == 200:
            break
    result: Result = {"page": name, "url": url, "status": response.status_code}
    if response.status_code != 200:
        missing = optional and response.status_code == 404
        result.update(ok=missing, error="not available" if missing else why_not_200(response))
        return result
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    queries = captured.captured_queries  # read now: the next request resets the log
    slowest = max(queries, key=lambda query: float(query["time"]))
    statuses: list[int] = []
    seconds = repeat(lambda: statuses.append(client.get(url).status_code), requests)
    result.update(
        ok=set(statuses) == {200},
        queries=len(queries),
        slowest_query_ms=float(slowest["time"]) * 1000,
        slowest_query=slowest["sql"],
        **summary_ms(seconds),
    )
    if not result["ok"]:
        result["error"] = f"statuses while timing: {sorted(set(statuses))}"
    return result


def measure_pages(requests: int) -> list[Result]:
    """Log in a superuser and measure each admin page."""
    from salvador_django.models import Task

    users: Any = get_user_model().objects
    user = users.filter(username=ADMIN_USER).first()
    if user is None:
        user = users.create_superuser(ADMIN_USER, "bench@example.com", password=None)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    failed_id = (
        Task.objects.failed()
        .filter(step_runs__status="failed")
        .order_by("-created_at")
        .values_list("id", flat=True)
        .first()
    )
    tasks = "/admin/salvador/task/"
    workflow = FILTERED_WORKFLOW
    return [
        measure_page(client, "task list", [tasks], requests),
        measure_page(client, "failed tasks", [f"{tasks}?status__exact=failed"], requests),
        measure_page(
            client,
            f"workflow {workflow}",
            [f"{tasks}?workflow={workflow}", f"{tasks}?workflow__exact={workflow}"],
            requests,
        ),
        measure_page(client, f"search {SEARCH!r}", [f"{tasks}?q={SEARCH}"], requests),
        measure_page(client, "search, no match", [f"{tasks}?q=no-such-text"], requests),
        measure_page(client, "search short id", [f"{tasks}?q={str(failed_id)[:8]}"], requests),
        measure_page(client, "search meta key=value", [f"{tasks}?q=customer%3Dc-12345"], requests),
        measure_page(client, "failed task detail", [f"{tasks}{failed_id}/change/"], requests),
        measure_page(client, "overview", ["/admin/salvador/overview/"], requests, optional=True),
        measure_page(
            client, "workers", ["/admin/salvador/workerprocess/"], requests, optional=True
        ),
    ]


def explain(queryset: Any) -> list[str]:
    """The plan of ``queryset`` as PostgreSQL ran it."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}", params)
        return [row[0] for row in cursor.fetchall()]


def measure_rollup() -> Result:
    """Roll up from scratch, then again as the sweep does; the plans of one hour's queries."""
    from django.utils import timezone

    from salvador_django.models import HourlyStats
    from salvador_django.rollup import HOUR, ended_attempts, ended_tasks, hour_of, roll_up

    HourlyStats.objects.all().delete()
    began = time.perf_counter()
    hours = roll_up("default")
    first = time.perf_counter() - began
    began = time.perf_counter()
    skipped = roll_up("default")  # within INTERVAL of the last: does nothing
    gate = time.perf_counter() - began
    began = time.perf_counter()
    again = roll_up("default", every=0)
    second = time.perf_counter() - began
    last = hour_of(timezone.now()) - HOUR
    return {
        "first_hours": hours,
        "first_s": first,
        "again_hours": again,
        "again_s": second,
        "skipped_hours": skipped,
        "skipped_s": gate,
        "rows": HourlyStats.objects.count(),
        "plans": {
            "tasks of one hour": explain(ended_tasks("default", last, last + HOUR)),
            "step attempts of one hour": explain(ended_attempts("default", last, last + HOUR)),
        },
    }


def ensure_workers() -> None:
    """Eight worker rows, two of them gone, each running a task of the seed."""
    from datetime import timedelta

    from django.utils import timezone

    from salvador_django.models import Task, WorkerProcess

    if WorkerProcess.objects.exists():
        return
    running = list(Task.objects.filter(status="running").values("id", "workflow", "step_name")[:8])
    now = timezone.now()
    WorkerProcess.objects.bulk_create(
        WorkerProcess(
            name=f"bench-{n}:{1000 + n}:worker",
            kind="worker",
            host=f"bench-{n % 3}",
            pid=1000 + n,
            version="bench",
            queue="database",
            concurrency=4,
            running=[
                {"task": str(t["id"]), "workflow": t["workflow"], "step": t["step_name"]}
                for t in running[n : n + 1]
            ],
            started_at=now - timedelta(hours=1),
            last_seen_at=now - timedelta(hours=1 if n >= 6 else 0),
        )
        for n in range(8)
    )


# --------------------------------------------------------------------------- report


def print_report(results: Result) -> None:
    """Print the figures of one run."""
    facts = results["database"]
    print(f"\nPostgreSQL {facts['postgresql']}, Django {facts['django']}")
    by_status = ", ".join(f"{s} {n:,}" for s, n in sorted(facts["tasks_by_status"].items()))
    print(f"tasks: {facts['tasks']:,} ({by_status}); step runs: {facts['step_runs']:,}")
    print(
        f"task table: {facts['task_table_mb']:,.0f} MB, "
        f"{facts['task_table_with_indexes_mb']:,.0f} MB with indexes"
    )
    seeding = results["seeding"]
    if seeding:
        print("seeding: " + ", ".join(f"{label} {s:.1f} s" for label, s in seeding.items()))
    else:
        print(
            f"seeding: skipped (the database holds the tasks); migrate {results['migrate']:.1f} s"
        )

    rollup = results["rollup"]
    print(
        f"\nroll-up from scratch: {rollup['first_hours']} hours in {rollup['first_s']:.2f} s; "
        f"again: {rollup['again_hours']} hours in {rollup['again_s'] * 1000:.0f} ms; "
        f"a call within its interval: {rollup['skipped_hours']} hours in "
        f"{rollup['skipped_s'] * 1000:.1f} ms; {rollup['rows']} rows"
    )
    for label, plan in rollup["plans"].items():
        print(f"  plan of the {label}:")
        for step in plan:
            print(f"    {step}")

    requests = results["args"]["requests"]
    line = "  {:<30} {:>6} {:>11} {:>11} {:>8}"
    ms = "{:.1f} ms".format
    print("\n" + line.format(f"raw baseline ({requests} runs)", "", "median", "p95", "").rstrip())
    for row in results["raw"]:
        print(line.format(row["query"], "", ms(row["median_ms"]), ms(row["p95_ms"]), "").rstrip())

    print(
        "\n"
        + line.format(f"admin pages ({requests} requests)", "status", "median", "p95", "queries")
    )
    for page in results["pages"]:
        if page.get("error"):
            print(f"  {page['page']:<30} {page['status']:>6}  {page['error']}")
            print(f"      {page['url']}")
            continue
        median, p95 = ms(page["median_ms"]), ms(page["p95_ms"])
        print(line.format(page["page"], page["status"], median, p95, page["queries"]))
        print(f"      {page['url']}")
        print(f"      slowest query, {page['slowest_query_ms']:.0f} ms: ", end="")
        print(short_sql(page["slowest_query"]))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""

    def positive(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
        return value

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=positive, default=1_000_000, help="tasks to seed")
    parser.add_argument(
        "--seed",
        action=argparse.BooleanOptionalAction,
        help="recreate and seed the database (default: when it does not hold --tasks tasks)",
    )
    parser.add_argument("--requests", type=positive, default=20, help="timed requests per page")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Seed if needed, measure, print; non-zero when a page did not answer 200."""
    args = parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    sys.path.insert(0, str(REPO))
    django.setup()
    from salvador_django.models import Task

    existing = existing_tasks(Task._meta.db_table)
    must_seed = existing != args.tasks if args.seed is None else args.seed
    if existing is None and not must_seed:
        print(f"the database {PG_DB} has no tasks table: run with --seed", file=sys.stderr)
        return 2
    results: Result = {"args": vars(args), "seeding": None, "migrate": None}
    if must_seed:
        print(f"seeding {args.tasks:,} tasks into {PG_DB} ...", flush=True)
        results["seeding"] = seed(args.tasks)
    else:
        results["migrate"] = migrate()
    results["database"] = database_facts()
    results["rollup"] = measure_rollup()
    ensure_workers()
    results["raw"] = measure_raw(args.requests)
    results["pages"] = measure_pages(args.requests)
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nresults written to {args.json}")
    failed = [page["page"] for page in results["pages"] if not page["ok"]]
    if failed:
        print(f"\npages that did not answer 200: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
