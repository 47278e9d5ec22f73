"""What a worker looks at as it starts, to warn of trouble before it happens.

- pending tasks of workflows this code does not register (no worker runs them);
- a database server that allows fewer connections than the worker alone needs: the
  worker would take the last of them, and the application's own requests would fail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DatabaseError, connections
from django.db.models import Count

from salvador_django.engine.text import loggable
from salvador_django.models import Task
from salvador_django.registry import registry
from salvador_django.status import TaskStatus

logger = logging.getLogger("salvador_django")


def warn_of_unregistered_workflows(database: str) -> None:
    """Warn of pending tasks whose workflow is not registered in this code.

    No worker runs them: a deploy removed or renamed their workflow (or workers run
    older code than the producers, in a rolling deploy, and will catch up). They
    wait, untouched, until an operator cancels them or the code returns.
    """
    try:
        waiting = list(
            Task.objects.using(database)
            .filter(status=TaskStatus.PENDING)
            .exclude(workflow__in=registry.names())
            .values("workflow")
            .annotate(tasks=Count("id"))
            .order_by("workflow")
        )
    except DatabaseError as exc:
        logger.error(
            "salvador: cannot look for tasks of unregistered workflows (%s)", loggable(str(exc))
        )
        return
    for row in waiting:
        logger.warning(
            "salvador: %d pending task(s) of workflow %r, which is not registered: "
            "no worker runs them (cancel them in the admin, or register the workflow)",
            row["tasks"],
            row["workflow"],
        )


@dataclass(frozen=True)
class ConnectionLimit:
    """How many connections a database server lets this user open, and why."""

    allowed: int
    explanation: str


def connection_limit(database: str) -> ConnectionLimit | None:
    """The server's limit on this user's connections; None if it has none we can read.

    PostgreSQL keeps ``superuser_reserved_connections`` (and, from version 16,
    ``reserved_connections``) of its ``max_connections`` for privileged roles.
    """
    connection = connections[database]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int, "
                "coalesce(current_setting('reserved_connections', true), '0')::int, "
                "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
            )
            most, superuser_reserved, reserved, superuser = cursor.fetchone()
            if superuser:
                return ConnectionLimit(most, f"max_connections {most}")
            allowed = most - superuser_reserved - reserved
            return ConnectionLimit(
                allowed,
                f"max_connections {most}, of which {superuser_reserved + reserved} reserved",
            )
        if connection.vendor == "mysql":
            cursor.execute("SELECT @@max_connections, @@max_user_connections")
            most, per_user = cursor.fetchone()
            if per_user and per_user < most:
                return ConnectionLimit(per_user, f"max_user_connections {per_user}")
            return ConnectionLimit(most, f"max_connections {most}")
    return None


def warn_if_connections_short(database: str, needed: int, how: str) -> None:
    """Warn when the worker alone would need more connections than the server allows.

    ``how`` says where the ``needed`` connections come from, for the message.
    """
    try:
        limit = connection_limit(database)
    except DatabaseError as exc:
        logger.warning(
            "salvador: cannot read the database's connection limit (%s)", loggable(str(exc))
        )
        return
    finally:
        connections[database].close()  # the worker's threads open their own
    if limit is None or needed <= limit.allowed:
        return
    logger.warning(
        "salvador: this worker needs up to %d database connections (%s), but the server "
        "allows %d (%s): once the worker holds them all, the application's own queries "
        "fail. Lower --concurrency or raise the server's limit.",
        needed,
        how,
        limit.allowed,
        limit.explanation,
    )
