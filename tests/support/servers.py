"""Private PostgreSQL, MariaDB and Redis servers for the tests that stop, restart or flush them.

The servers are ``benchmarks/faults/servers.py``'s (the fault-injection run uses the
same); tests import them from here. A private PostgreSQL runs as the ``postgres``
system user through ``runuser``, which only root may use: ``require_private_postgres``
skips a test that needs one when this process cannot start it, or fails it when
``SALVADOR_TEST_REQUIRE_SERVICES`` is set.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pytest

from benchmarks.faults.servers import (
    RUNUSER,
    PostgresServer,
    RedisServer,
    free_port,
    postgres_binaries,
    runuser_binary,
    wait_for_port,
)

__all__ = [
    "PostgresServer",
    "RedisServer",
    "Verdict",
    "free_port",
    "postgres_binaries",
    "private_postgres_verdict",
    "require_private_postgres",
    "runuser_binary",
    "wait_for_port",
]

REQUIRE_SERVICES = "SALVADOR_TEST_REQUIRE_SERVICES"


class Verdict(NamedTuple):
    """Whether a test may start a private PostgreSQL: ``start``, ``skip`` or ``fail``."""

    action: Literal["start", "skip", "fail"]
    reason: str = ""


def private_postgres_verdict(
    uid: int,
    environ: Mapping[str, str],
    *,
    binaries: Path | None,
    runuser: str | None,
    postgres_user: bool,
) -> Verdict:
    """Decide whether a process of ``uid`` in ``environ`` can start a private PostgreSQL.

    It needs the server's binaries, root (``initdb`` and the server run as the
    ``postgres`` user through ``runuser``, which only root may use), ``runuser`` and
    that user. When one is missing the test is skipped, unless the environment
    requires every service (``SALVADOR_TEST_REQUIRE_SERVICES``): then it fails.
    """
    if binaries is None:
        reason = "no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin"
    elif uid != 0:
        reason = (
            f"a private PostgreSQL needs root (this process runs as uid {uid}): its "
            "server runs as the postgres user through runuser, which only root may use"
        )
    elif runuser is None:
        reason = f"runuser is not installed (looked for {RUNUSER} and on PATH)"
    elif not postgres_user:
        reason = "there is no postgres system user to run a private PostgreSQL as"
    else:
        return Verdict("start")
    if environ.get(REQUIRE_SERVICES):
        return Verdict("fail", f"{reason}, and {REQUIRE_SERVICES} is set")
    return Verdict("skip", reason)


def user_exists(name: str) -> bool:
    """Whether this machine has a user account called ``name``."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def require_private_postgres() -> None:
    """Skip (or, with ``SALVADOR_TEST_REQUIRE_SERVICES``, fail) unless this process can
    start a private PostgreSQL."""
    verdict = private_postgres_verdict(
        os.geteuid(),
        os.environ,
        binaries=postgres_binaries(),
        runuser=runuser_binary(),
        postgres_user=user_exists("postgres"),
    )
    if verdict.action == "fail":
        pytest.fail(verdict.reason)
    if verdict.action == "skip":
        pytest.skip(verdict.reason)


def require_private_mariadb() -> None:
    """Skip (or, with ``SALVADOR_TEST_REQUIRE_SERVICES``, fail) unless this process can
    start a private MariaDB: its server, ``mariadb-install-db`` and mysqlclient."""
    import importlib.util
    import shutil

    reason = None
    if not (shutil.which("mariadbd") or os.access("/usr/sbin/mariadbd", os.X_OK)):
        reason = "no MariaDB server (mariadbd) installed"
    elif not shutil.which("mariadb-install-db"):
        reason = "no mariadb-install-db to make a private MariaDB's data directory"
    elif importlib.util.find_spec("MySQLdb") is None:
        reason = "mysqlclient is not installed (pip install -e '.[mysql]')"
    elif os.geteuid() == 0 and not user_exists("mysql"):
        reason = "running as root, there is no mysql system user to run MariaDB as"
    if reason is None:
        return
    if os.environ.get(REQUIRE_SERVICES):
        pytest.fail(f"{reason}, and {REQUIRE_SERVICES} is set")
    pytest.skip(reason)


def drop_connections(connection: Any, *, own: bool) -> None:
    """The server drops this connection (``own``) or every other one to its database,
    as a restart would: PostgreSQL's ``pg_terminate_backend``, MySQL's ``KILL``."""
    if connection.vendor == "postgresql":
        which = "pid = pg_backend_pid()" if own else "pid <> pg_backend_pid()"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = current_database() AND {which}"
            )
        return
    assert connection.vendor == "mysql", connection.vendor
    with connection.cursor() as cursor:
        which = "id = CONNECTION_ID()" if own else "id <> CONNECTION_ID()"
        cursor.execute(
            f"SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND {which}"
        )
        ids = [row[0] for row in cursor.fetchall()]
    import MySQLdb

    params = connection.get_connection_params()
    killer = MySQLdb.connect(
        **{k: v for k, v in params.items() if k in ("host", "port", "user", "password")}
    )
    try:
        for thread in ids:  # from another connection: a KILL of one's own is refused
            with contextlib.suppress(MySQLdb.OperationalError):  # gone already
                killer.cursor().execute(f"KILL CONNECTION {int(thread)}")
    finally:
        killer.close()
