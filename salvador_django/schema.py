"""Whether a database holds salvador's tables, up to date: asked before work starts.

A worker started on a database that was never migrated would otherwise loop on SQL
errors; a ``submit()`` would fail with the database's own words. Both say instead
what to do: run ``manage.py migrate``.
"""

from __future__ import annotations

from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from salvador_django.exceptions import ConfigurationError

APP_LABEL = "salvador"
TABLES = ("salvador_task", "salvador_steprun")


def unapplied_migrations(database: str) -> list[str]:
    """The salvador migrations not applied to ``database`` (raises if it is unreachable)."""
    executor = MigrationExecutor(connections[database])
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] == APP_LABEL]
    plan = executor.migration_plan(targets)
    return [
        migration.name
        for migration, backwards in plan
        if migration.app_label == APP_LABEL and not backwards
    ]


def problem(database: str) -> str | None:
    """What is wrong with the salvador tables of ``database``, or None when they are ready."""
    unapplied = unapplied_migrations(database)
    if not unapplied:
        return None
    if unapplied[0].startswith("0001"):
        return (
            f"The salvador tables do not exist in database {database!r}: run `manage.py migrate`."
        )
    return (
        f"The salvador tables of database {database!r} are not up to date "
        f"(unapplied: {', '.join(unapplied)}): run `manage.py migrate`."
    )


def explain(exc: DatabaseError, database: str) -> ConfigurationError | None:
    """A clear error for ``exc`` when it comes from a missing salvador table or column.

    Read from the database's message, so it works inside a transaction the error
    aborted (as PostgreSQL's are), where no further query can run.
    """
    message = str(exc)
    missing = any(
        words in message.lower()
        for words in ("no such table", "does not exist", "doesn't exist", "no such column")
    )
    if not (missing and any(table in message for table in TABLES)):
        return None
    return ConfigurationError(
        f"The salvador tables of database {database!r} do not exist or are not up to "
        f"date: run `manage.py migrate` (the database said: {message.strip()})"
    )
