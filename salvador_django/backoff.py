"""How long-lived threads survive errors: log what went wrong, back off, go on."""

from __future__ import annotations

import logging

from django.db import Error as DatabaseError
from django.db import connections

from salvador_django.engine.text import loggable, loggable_traceback
from salvador_django.exceptions import QueueUnavailable

logger = logging.getLogger("salvador_django")

#: Seconds to wait after the first, second, ... error in a row; then the last, again.
ERROR_BACKOFF_SECONDS = (0.5, 1, 2, 5, 10)


def backoff_delay(errors: int) -> float:
    """Seconds to wait after ``errors`` errors in a row (0: the first)."""
    return ERROR_BACKOFF_SECONDS[min(errors, len(ERROR_BACKOFF_SECONDS) - 1)]


def log_error(exc: Exception, message: str, *args: object) -> None:
    """Log ``message`` % (``exc`` escaped, ``*args``); with a traceback if unexpected."""
    text = message % (loggable(str(exc)), *args)
    if isinstance(exc, (DatabaseError, QueueUnavailable)):
        logger.error("salvador: %s", text)
    else:  # a defect somewhere (or in a queue): the traceback says where
        logger.error("salvador: %s\n%s", text, loggable_traceback(exc))


def close_connections() -> None:
    for connection in connections.all(initialized_only=True):
        connection.close()
