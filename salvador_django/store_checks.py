"""System checks of the database that holds the tasks (ids ``salvador.E06x`` / ``W06x``).

Each warns of a configuration known to lose, duplicate or lock work: SQLite without
``IMMEDIATE`` transactions or without WAL, MySQL/MariaDB out of READ COMMITTED or in
a 3-byte ``utf8`` charset or with a clock in another time zone than Django's, and a
MySQL/MariaDB server too old for ``SKIP LOCKED``.
The settings are checked always; what only the server can tell (its version, the
journal mode, the tables' charset) when Django runs the database checks (``migrate``,
``check --database``).
"""

from __future__ import annotations

import importlib.util
from datetime import datetime
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections

from salvador_django.conf import DEFAULTS, raw_settings

#: The oldest servers with ``SELECT … FOR UPDATE SKIP LOCKED``.
MYSQL_OLDEST = (8, 0)
MARIADB_OLDEST = (10, 6)

_MYSQL = "django.db.backends.mysql"


def require_driver(alias: str, engine: str) -> None:
    """Raise ``ImproperlyConfigured`` naming the extra when MySQL's driver is missing."""
    if engine == _MYSQL and importlib.util.find_spec("MySQLdb") is None:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}] is MySQL/MariaDB, which salvador-django reaches through "
            "mysqlclient, and mysqlclient is not installed: pip install 'salvador-django[mysql]'."
        )


def store_alias() -> str | None:
    """The alias ``SALVADOR["DATABASE"]`` names, if it names one of ``DATABASES``."""
    raw = raw_settings()
    alias = raw.get("DATABASE", DEFAULTS["DATABASE"]) if isinstance(raw, dict) else None
    if not isinstance(alias, str) or alias not in connections:
        return None  # salvador.E001, E003 or E010 says so
    return alias


def _store() -> tuple[str, dict[str, Any]] | None:
    alias = store_alias()
    return None if alias is None else (alias, connections.settings[alias])


@register(Tags.compatibility)
def check_store_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The tasks' database is configured not to lock, lose or duplicate work."""
    found = _store()
    return [] if found is None else settings_problems(*found)


def settings_problems(alias: str, params: dict[str, Any]) -> list[CheckMessage]:
    """What is wrong with ``DATABASES[alias]`` (``params``) as the tasks' database."""
    options = params.get("OPTIONS") or {}
    engine = params.get("ENGINE", "")
    where = f"DATABASES[{alias!r}]['OPTIONS']"
    if engine == "django.db.backends.sqlite3" and options.get("transaction_mode") != "IMMEDIATE":
        return [
            Warning(
                f"The tasks' SQLite database {alias!r} starts its transactions DEFERRED: "
                "a worker and a submit that write at once fail with 'database is locked'.",
                hint=f'Set {where}["transaction_mode"] = "IMMEDIATE".',
                id="salvador.W060",
            )
        ]
    if engine != _MYSQL:
        return []
    messages: list[CheckMessage] = []
    isolation = options.get("isolation_level", "read committed")
    if str(isolation or "").lower() != "read committed":
        messages.append(
            Warning(
                f"The tasks' MySQL/MariaDB database {alias!r} runs at isolation level "
                f"{isolation or 'of the server (REPEATABLE READ by default)'}: a caller that "
                "loses an idempotency race inside its own transaction cannot read the winner, "
                "and claims lock more rows than they take.",
                hint=f'Set {where}["isolation_level"] = "read committed" (Django\'s default).',
                id="salvador.W061",
            )
        )
    charset = str(options.get("charset", "utf8mb4")).lower()
    if charset != "utf8mb4":
        messages.append(_three_byte(alias, f"its connection's charset is {charset!r}"))
    return messages


@register(Tags.database)
def check_store_server(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """What only the server can tell: its version, SQLite's journal, the tables' charset."""
    found = _store()
    if found is None or databases is None or found[0] not in databases:
        return []
    alias = found[0]
    connection = connections[alias]
    try:
        if connection.vendor == "sqlite":
            return _sqlite_journal(alias, connection)
        if connection.vendor == "mysql":
            return _mysql_server(alias, connection)
    except DatabaseError:
        return []  # a server that cannot answer: the application's own checks will say
    return []


def _sqlite_journal(alias: str, connection: Any) -> list[CheckMessage]:
    if connection.is_in_memory_db():
        return []
    with connection.cursor() as cursor:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() == "wal":
        return []
    return [
        Warning(
            f"The tasks' SQLite database {alias!r} keeps a {mode!r} journal, not WAL: every "
            "write blocks every read, so the admin and the submits stall behind the workers.",
            hint=f"Add \"PRAGMA journal_mode=WAL;\" to DATABASES[{alias!r}]['OPTIONS']"
            "['init_command'] (or run it once: WAL stays set in the file).",
            id="salvador.W062",
        )
    ]


def version_problem(alias: str, mariadb: bool, version: tuple[int, ...]) -> Error | None:
    """The error for a MySQL/MariaDB server older than salvador-django needs, if it is."""
    oldest = MARIADB_OLDEST if mariadb else MYSQL_OLDEST
    if version[:2] >= oldest:
        return None
    name = "MariaDB" if mariadb else "MySQL"
    return Error(
        f"The tasks' database {alias!r} is {name} {'.'.join(map(str, version))}; "
        f"salvador-django needs {name} {'.'.join(map(str, oldest))} or later (for SELECT … "
        "FOR UPDATE SKIP LOCKED).",
        id="salvador.E060",
    )


def _mysql_server(alias: str, connection: Any) -> list[CheckMessage]:
    too_old = version_problem(alias, connection.mysql_is_mariadb, connection.mysql_version)
    if too_old is not None:
        return [too_old]
    messages = _clock_problem(alias, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, character_set_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name LIKE 'salvador\\_%%' "
            "AND character_set_name IN ('utf8', 'utf8mb3') ORDER BY table_name, column_name"
        )
        narrow = [f"{table}.{column}" for table, column, _ in cursor.fetchall()]
    if narrow:
        listed = ", ".join(narrow[:5]) + (" …" if len(narrow) > 5 else "")
        messages.append(_three_byte(alias, f"columns are in the 3-byte utf8 charset ({listed})"))
    return messages


def _clock_problem(alias: str, connection: Any) -> list[CheckMessage]:
    """Whether the session's ``NOW()`` is in the time zone Django writes datetimes in.

    MySQL and MariaDB store datetimes without a zone: Django writes them in UTC (or in
    ``DATABASES[alias]["TIME_ZONE"]``), and the claim, the leases and the timers
    compare them with the server's ``NOW()``, which is in the session's time zone.
    """
    if connection.timezone is None:
        return []  # USE_TZ = False: salvador.W001 says so
    with connection.cursor() as cursor:
        cursor.execute("SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())")
        server = int(cursor.fetchone()[0])
    offset = connection.timezone.utcoffset(datetime.now())
    expected = int(offset.total_seconds()) if offset is not None else 0
    if abs(server - expected) < 60:
        return []
    return [
        Warning(
            f"The tasks' MySQL/MariaDB database {alias!r}: the session's NOW() is "
            f"{_hours(server)} from UTC, and Django writes its times at {_hours(expected)}: "
            "due times, leases and timers, compared with NOW(), are off by the difference "
            "(tasks run early or late, leases expire early or late).",
            hint=f"Set DATABASES[{alias!r}]['OPTIONS'][\"init_command\"] = "
            "\"SET time_zone = '+00:00'\" (or run the server in UTC).",
            id="salvador.W064",
        )
    ]


def _hours(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _three_byte(alias: str, why: str) -> Warning:
    return Warning(
        f"The tasks' MySQL/MariaDB database {alias!r}: {why}. Text with 4-byte characters "
        "(an emoji in a body, a key or an error) cannot be stored: the write fails.",
        hint="Use utf8mb4: the connection's OPTIONS['charset'] (Django's default) and the "
        "tables (ALTER TABLE … CONVERT TO CHARACTER SET utf8mb4).",
        id="salvador.W063",
    )
