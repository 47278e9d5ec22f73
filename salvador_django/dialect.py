"""What differs by database besides the statements of :mod:`salvador_django.sql`.

Upserts, how deep a JSON value may nest, which errors say that the connection broke
rather than the query, and which that a write lost to another's lock and may run
again: each a fact of the database a connection reaches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import OperationalError, connections

T = TypeVar("T")


def conflict_target(connection: Any, fields: Sequence[str]) -> dict[str, Any]:
    """``bulk_create``'s ``unique_fields`` for an upsert on ``fields``, where it takes them.

    MySQL and MariaDB update on any unique key (``ON DUPLICATE KEY UPDATE``) and refuse
    a target; ``fields`` must then be the table's only unique key besides its own.
    """
    if connection.features.supports_update_conflicts_with_target:
        return {"unique_fields": list(fields)}
    return {}


def foreign_keys_share_lock(connection: Any) -> bool:
    """Whether inserting a row that refers to another holds a lock on that row which
    the row's own update conflicts with: InnoDB's shared lock. (PostgreSQL's key-share
    lock lets an update of other columns through; SQLite locks the whole database.)"""
    return bool(connection.vendor == "mysql")


#: How deep MariaDB's ``JSON_VALID`` (the check of every JSON column there) lets a
#: value nest: deeper, the row is refused.
MARIADB_JSON_DEPTH = 31


def stored_json_depth(connection: Any) -> int | None:
    """How deep a JSON value may nest for ``connection`` to store it; None: no lower limit."""
    if connection.vendor == "mysql" and connection.mysql_is_mariadb:
        return MARIADB_JSON_DEPTH
    return None


def json_depth_limit(connection: Any, default: int) -> int:
    """How deep a JSON value may nest on ``connection``: ``default``, less on MariaDB."""
    stored = stored_json_depth(connection)
    return default if stored is None else min(default, stored)


# MySQL/MariaDB client and server errors that say the connection went, not the query:
# can't connect (2002, 2003), server gone away (2006), lost during a query (2013),
# server shutting down (1053), connection killed (1927, MariaDB), closed for being
# idle (4031, MySQL 8.0.24+).
_MYSQL_CONNECTION_ERRORS = frozenset({1053, 1927, 2002, 2003, 2006, 2013, 4031})


def connection_broke(connection: Any, cause: BaseException | None) -> bool:
    """Whether the driver's ``OperationalError`` ``cause`` is the connection breaking."""
    if connection.vendor == "postgresql":
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        # No SQLSTATE: the connection itself failed; 08: connection exception; 57P01-03:
        # the server is shutting down, crashed, or not accepting connections yet.
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
    if connection.vendor == "mysql":
        code = cause.args[0] if cause is not None and cause.args else None
        return code in _MYSQL_CONNECTION_ERRORS
    return False


#: A write that lost to another's lock runs again this many times, waiting longer each.
LOCK_RETRIES = 20
LOCK_RETRY_SECONDS = 0.05
# MySQL/MariaDB: a deadlock (1213: InnoDB rolled the transaction back) or a lock wait
# timeout (1205).
_MYSQL_LOCK_CONFLICTS = frozenset({1205, 1213})


def lock_conflict(connection: Any, exc: BaseException) -> bool:
    """Whether ``exc`` is a write that lost to another's lock and may simply run again.

    SQLite's "database is locked"; MySQL's deadlock or lock wait timeout, outside a
    transaction the caller holds (InnoDB rolled back all of it: only the caller may
    run it again).
    """
    if not isinstance(exc, OperationalError):
        return False
    if connection.vendor == "sqlite":
        return "locked" in str(exc)
    if connection.vendor == "mysql" and not connection.in_atomic_block:
        cause = exc.__cause__
        return bool(cause is not None and cause.args and cause.args[0] in _MYSQL_LOCK_CONFLICTS)
    return False


def retry_lock_conflicts(database: str, write: Callable[[], T]) -> T:
    """Run ``write``; when it loses to another's lock (:func:`lock_conflict`), again."""
    connection = connections[database]
    for attempt in range(LOCK_RETRIES):
        try:
            return write()
        except OperationalError as exc:
            if attempt == LOCK_RETRIES - 1 or not lock_conflict(connection, exc):
                raise
            time.sleep(LOCK_RETRY_SECONDS * (attempt + 1))
    raise AssertionError("unreachable")
