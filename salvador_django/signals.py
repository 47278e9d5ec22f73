"""Django signals of a task's life, each sent after the commit that makes it true.

Connect receivers as to any Django signal (in an ``AppConfig.ready()``)::

    from django.dispatch import receiver
    from salvador_django.signals import task_finished

    @receiver(task_finished)
    def on_finished(sender, task, status, **kwargs):
        if status == "failed":
            alert(task.workflow, task.id, task.error)

Every signal is sent with ``sender`` the :class:`~salvador_django.models.Task` class
and ``task`` the task (an instance as the sender knew it: read what you need, or
``refresh_from_db()``), plus the arguments listed at each one. A signal is sent
after the transaction that wrote it commits, and never for a write that rolled back;
one sent outside a transaction is sent at once. A receiver that raises is logged
(``salvador_django`` logger) and never breaks the worker, the submit or the other
receivers. Receivers run in the thread that made the change: keep them short.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections, transaction
from django.dispatch import Signal

logger = logging.getLogger("salvador_django")

__all__ = [
    "step_finished", "step_started", "task_finished", "task_requeued", "task_started",
    "task_submitted", "task_waiting",
]  # fmt: skip

#: A task was created (``submit()``, a schedule's tick, a parent's child). An
#: idempotent ``submit()`` that returned an existing task sends nothing.
task_submitted = Signal()

#: A worker claimed a task for the first time (not when it resumes after a retry, a
#: wait, a pause or a crash). Arguments: ``worker`` (the worker's name).
task_started = Signal()

#: A step attempt begins. Arguments: ``step`` (its name), ``attempt`` (its number,
#: from 1), ``worker``.
step_started = Signal()

#: A step attempt ended and what it wrote committed. Arguments: ``step``,
#: ``attempt``, ``worker``, ``outcome`` (``"completed"``, ``"failed"`` (its attempts
#: are spent), ``"retrying"`` (another attempt is due), ``"skipped"`` (its condition
#: was false) or ``"waiting"`` (it waits for a signal, a timer or children)),
#: ``duration`` (seconds, a float) and ``error`` (the attempt's error, or ``""``).
step_finished = Signal()

#: A task began to wait (a signal, a timer, children) and holds no worker.
#: Arguments: ``waiting_for`` (what it waits for, as the task page says it).
task_waiting = Signal()

#: A task ended. Arguments: ``status`` (``"completed"``, ``"failed"`` or
#: ``"cancelled"``).
task_finished = Signal()

#: An operator requeued a finished task (``Task.requeue()``, the admin, a command).
#: Arguments: ``from_start`` (bool), ``step`` (the name of the step it runs from).
task_requeued = Signal()

SIGNALS = (
    task_submitted, task_started, step_started, step_finished, task_waiting, task_finished,
    task_requeued,
)  # fmt: skip


def listened(signal: Signal) -> bool:
    """Whether ``signal`` has receivers: a quick test, so that an unheard signal costs
    nothing (not even the arguments it would be sent with)."""
    return bool(signal.receivers)


def send(signal: Signal, sender: Any, **arguments: Any) -> None:
    """Send ``signal`` now, to every receiver; log those that raise."""
    for receiver, result in signal.send_robust(sender, **arguments):
        if isinstance(result, Exception):
            logger.error(
                "salvador: a receiver of a signal raised: %r",
                result,
                exc_info=(type(result), result, result.__traceback__),
                extra={"receiver": getattr(receiver, "__qualname__", repr(receiver))},
            )


def send_on_commit(signal: Signal, sender: Any, using: str, **arguments: Any) -> None:
    """Send ``signal`` when the current transaction on ``using`` commits (at once if
    none is open); nothing if it rolls back, or if the signal has no receivers."""
    if not signal.receivers:
        return
    if not connections[using].in_atomic_block:  # committed already (autocommit): now
        send(signal, sender, **arguments)
        return
    transaction.on_commit(lambda: send(signal, sender, **arguments), using=using)
