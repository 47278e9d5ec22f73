"""The Django tasks of the fault-injection run, on ``SalvadorBackend`` (``TASKS`` in
:mod:`.settings`), enqueued by :mod:`.enqueued_records`' load.

``chaos_square`` logs each execution to the Django tasks' log (``CHAOS_TASKS_LOG``) as
it starts, as the workflows' steps do: the task's id, its attempt, this process and
its claim (the worker and the claim's time, from its ``TaskContext``). Then it works
(sleeps ``work`` seconds); a flaky one raises until it has failed once (an attempt
lost with its worker before its failure was recorded does not count); it returns
:func:`~.enqueued_checks.expected_value`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.faults.enqueued_checks import expected_value
from benchmarks.faults.journal import append
from salvador_django.tasks.compat import TaskContext

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef]

LOG = "CHAOS_TASKS_LOG"


class FirstAttemptFails(Exception):
    """What a flaky task raises on its first attempt."""


def attempt_of(context: TaskContext[Any, Any]) -> int:
    """This attempt's number as its step run will record it: the failed attempts before
    it, plus one. (``context.attempt`` counts the attempts lost with their worker too.)"""
    return len(context.task_result.errors) + 1


def record(context: TaskContext[Any, Any]) -> None:
    """Log this execution (an :class:`~.checks.Execution` of step 0)."""
    result = context.task_result
    worker = result.worker_ids[-1]  # this attempt's: the claim's worker
    claimed = result.last_attempted_at.timestamp() if result.last_attempted_at else 0.0
    append(LOG, {"t": time.time(), "task": result.id, "step": 0, "attempt": attempt_of(context),
                 "pid": os.getpid(), "token": f"{worker}@{claimed:.6f}", "claimed": claimed,
                 "due": result.enqueued_at.timestamp() if result.enqueued_at else 0.0})  # fmt: skip


@task(takes_context=True)
def chaos_square(
    context: TaskContext[Any, Any], number: int, work: float, flaky: bool
) -> dict[str, Any]:
    record(context)
    time.sleep(work)
    if flaky and attempt_of(context) == 1:  # until one failure is recorded
        raise FirstAttemptFails(f"#{number}: the first attempt fails")
    return expected_value(number)
