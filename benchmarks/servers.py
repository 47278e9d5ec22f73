"""What every benchmark script shares: the servers it measures, and how it summarises.

Connection settings come from the same environment variables as
``benchmarks.settings``: ``SALVADOR_BENCH_PG_HOST`` / ``_PORT`` / ``_USER`` / ``_NAME``
(default 127.0.0.1, 5432, postgres, salvador_bench); ``SALVADOR_BENCH_MYSQL_HOST`` /
``_PORT`` / ``_USER`` / ``_PASSWORD`` / ``_NAME`` (default 127.0.0.1, 3306, root, empty,
salvador_bench) for MariaDB; and ``SALVADOR_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_DB = os.environ.get("SALVADOR_BENCH_PG_NAME", "salvador_bench")
MYSQL_DB = os.environ.get("SALVADOR_BENCH_MYSQL_NAME", "salvador_bench")
BACKENDS = ("sqlite", "postgres", "postgres+redis", "mariadb", "mariadb+redis")
PG_BACKENDS = ("postgres", "postgres+redis")
MYSQL_BACKENDS = ("mariadb", "mariadb+redis")
REDIS_BACKENDS = ("postgres+redis", "mariadb+redis")

Result = dict[str, Any]


def log(backend: str, message: str) -> None:
    """Print a progress line for ``backend``."""
    print(f"[{backend}] {message}", flush=True)


def pg_params() -> dict[str, Any]:
    """Connection parameters of the PostgreSQL server (same env vars as the settings)."""
    return {
        "host": os.environ.get("SALVADOR_BENCH_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("SALVADOR_BENCH_PG_PORT", "5432")),
        "user": os.environ.get("SALVADOR_BENCH_PG_USER", "postgres"),
    }


def pg_connect(dbname: str) -> Any:
    """A raw autocommit psycopg connection to ``dbname``."""
    import psycopg

    return psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=3, **pg_params())


def recreate_database(dbname: str) -> None:
    """Drop ``dbname`` if it exists (closing its sessions) and create it empty."""
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')


def drop_database(dbname: str) -> None:
    """Drop ``dbname`` if it exists, closing its sessions."""
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be benchmarked, or None when it can."""
    try:
        with pg_connect("postgres") as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return None


def mysql_params() -> dict[str, Any]:
    """Connection parameters of the MariaDB server (same env vars as the settings)."""
    return {
        "host": os.environ.get("SALVADOR_BENCH_MYSQL_HOST", "127.0.0.1"),
        "port": int(os.environ.get("SALVADOR_BENCH_MYSQL_PORT", "3306")),
        "user": os.environ.get("SALVADOR_BENCH_MYSQL_USER", "root"),
        "password": os.environ.get("SALVADOR_BENCH_MYSQL_PASSWORD", ""),
    }


class MySQLConnection:
    """A raw autocommit MySQLdb connection whose ``execute()`` returns its cursor, as
    sqlite3's and psycopg's connections do."""

    def __init__(self, dbname: str | None = None) -> None:
        import MySQLdb

        database = {"database": dbname} if dbname else {}
        self.connection = MySQLdb.connect(
            autocommit=True, connect_timeout=3, charset="utf8mb4", **mysql_params(), **database
        )
        self.cursor = self.connection.cursor()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        # None, not (): MySQLdb formats the statement with ``%`` whenever params are given.
        self.cursor.execute(sql, params or None)
        return self.cursor

    def close(self) -> None:
        self.connection.close()


def recreate_mysql_database(dbname: str) -> None:
    """Drop the MariaDB database ``dbname`` if it exists and create it empty (utf8mb4)."""
    conn = MySQLConnection()
    try:
        conn.execute(f"DROP DATABASE IF EXISTS `{dbname}`")
        conn.execute(f"CREATE DATABASE `{dbname}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    finally:
        conn.close()


def drop_mysql_database(dbname: str) -> None:
    """Drop the MariaDB database ``dbname`` if it exists."""
    conn = MySQLConnection()
    try:
        conn.execute(f"DROP DATABASE IF EXISTS `{dbname}`")
    finally:
        conn.close()


def mysql_unreachable() -> str | None:
    """Why MariaDB cannot be benchmarked (no driver, no server), or None when it can."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return "mysqlclient is not installed (pip install 'salvador-django[mysql]')"
    try:
        conn = MySQLConnection()
        try:
            conn.execute("SELECT 1")
        finally:
            conn.close()
    except Exception as exc:
        params = mysql_params()
        why = " ".join(f"{type(exc).__name__}: {exc}".split())
        return f"MariaDB is unreachable at {params['host']}:{params['port']} ({why})"
    return None


def redis_url() -> str:
    """The Redis server of the ``+redis`` backends (same env var as the settings)."""
    return os.environ.get("SALVADOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_connect() -> Any:
    """A raw redis-py client of the Redis server."""
    import redis

    return redis.Redis.from_url(redis_url(), socket_connect_timeout=3)


def redis_unreachable() -> str | None:
    """Why Redis cannot be benchmarked, or None when it can."""
    try:
        client = redis_connect()
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return None


def redis_delete_prefix(prefix: str) -> int:
    """Delete every Redis key under ``prefix`` (SCAN + DEL); returns how many."""
    pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix) + "*"
    client = redis_connect()
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return int(deleted)


def unreachable(backend: str) -> str | None:
    """Why ``backend`` cannot be benchmarked (a server is unreachable), or None."""
    if backend in PG_BACKENDS:
        why = postgres_unreachable()
        if why:
            return f"PostgreSQL is unreachable ({why})"
    if backend in MYSQL_BACKENDS:
        why = mysql_unreachable()
        if why:
            return why
    if backend in REDIS_BACKENDS:
        why = redis_unreachable()
        if why:
            return f"Redis is unreachable at {redis_url()} ({why})"
    return None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of latencies given in seconds, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "n": len(ms),
    }


def bench_env(backend: str, workdir: Path) -> dict[str, str]:
    """The environment of every process that loads ``benchmarks.settings``."""
    pythonpath = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": str(REPO) + (os.pathsep + pythonpath if pythonpath else ""),
        "SALVADOR_BENCH_DB": backend,
        "SALVADOR_BENCH_SQLITE": str(workdir / "bench.sqlite3"),
    }
