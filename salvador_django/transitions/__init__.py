"""The task's state machine: every move of a task, declared once.

Each :class:`Move` names the statuses it is allowed from, the statuses it may leave
the task in, the fields it writes, and whether only the worker holding the task's
claim may make it (``fenced``: the write is conditional on ``claimed_by``). The
engine, the reaper, ``Task.requeue()``/``Task.cancel()``, the bulk commands and the
admin all write through these moves; none of them restates a status rule.

Applying a move is one conditional ``UPDATE``: two callers racing on one task move
it once, and the second finds nothing to update. This package knows querysets, not
the models, so every layer above the status enums may use it: :mod:`.move` holds
:class:`Move` and :func:`perform`, :mod:`.changes` what each move writes, and this
module the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salvador_django.signals import task_finished, task_requeued, task_waiting
from salvador_django.transitions import changes, tree
from salvador_django.transitions.move import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PAUSED,
    PENDING,
    RUNNING,
    WAITING,
    Changes,
    Move,
    perform,
)
from salvador_django.transitions.signals import tasks_due

__all__ = [
    "CANCELLED", "COMPLETED", "FAILED", "MOVES", "PAUSED", "PENDING", "RUNNING", "WAITING",
    "Move", "perform", "tasks_due",
]  # fmt: skip

_CHECKPOINT = "step step_name state attempt recoveries error progress"
#: The last checkpoint keeps the last step's lease expiries (a one-step task's lost attempts).
_FINAL_CHECKPOINT = "step step_name state attempt error progress"
_UNCLAIM = "claimed_by lease_expires_at"
_STOP = f"status step step_name attempt error finished_at {_UNCLAIM}"
_UNWAIT = "waiting_for wake_at children_left"
_REQUEUE = (
    "status run_after attempt recoveries error finished_at cancel_requested_at "
    f"pause_requested_at compensation failed_step return_value {_UNWAIT}"
)


def _move(name: str, path: str, fields: str, write: Callable[..., Changes], **flags: Any) -> Move:
    """A move along ``path`` ("pending|failed -> cancelled") writing ``fields`` (space-separated)."""
    sources, targets = (frozenset(side.split("|")) for side in path.replace(" ", "").split("->"))
    return Move(name, sources, targets, frozenset(fields.split()), write, **flags)


# -- the table ---------------------------------------------------------------------------
# fmt: off

#: A worker takes a due task, with a lease (the queues' claim statements write the same).
CLAIM = _move("claim", "pending -> running", "status claimed_by lease_expires_at started_at", changes.claim)
#: A heartbeat extends the lease of a task its worker still holds.
RENEW = _move("renew", "running -> running", "lease_expires_at", changes.renew, fenced=True)
#: A step completed and another follows: progress, state, and the attempt count reset.
CHECKPOINT = _move("checkpoint", "running -> running", _CHECKPOINT, changes.checkpoint, fenced=True)
#: The last step completed.
COMPLETE = _move("complete", "running -> completed", f"{_FINAL_CHECKPOINT} {_UNCLAIM} status finished_at return_value", changes.complete, fenced=True)
#: An attempt failed and another is due after a backoff (forward steps and compensations).
RETRY = _move("retry", "running -> pending", f"status step step_name run_after attempt error {_UNCLAIM}", changes.retry, fenced=True)
#: The worker stops (shutdown) and hands the task back at its current step.
RELEASE = _move("release", "running -> pending", f"status {_UNCLAIM}", changes.release, fenced=True)
#: A step's attempts are spent (or its failure is permanent): the task fails there.
FAIL = _move("fail", "running -> failed", f"{_STOP} failed_step", changes.stop(FAILED), fenced=True, tells=task_finished)
#: A cancellation requested while the task ran takes effect (between steps, or at a failure).
END_CANCELLED = _move("end cancelled", "running -> cancelled", _STOP, changes.stop(CANCELLED), fenced=True, tells=task_finished)
#: A watchdog takes the claim of an attempt that hung past its timeout.
TAKE_OVER = _move("take over", "running -> running", "claimed_by", changes.take_over, fenced=True)
#: The task failed or was cancelled and completed steps have compensations: undo them.
START_COMPENSATION = _move("start compensation", "running -> running|pending", f"step step_name attempt compensation error cancel_requested_at failed_step status run_after {_UNCLAIM}", changes.start_compensation, fenced=True)
#: One compensation completed: one step fewer to undo.
COMPENSATE_STEP = _move("compensate step", "running -> running", "step step_name state attempt recoveries progress", changes.compensate_step, fenced=True)
#: Every compensation completed: the task ends failed (or cancelled), compensated.
END_COMPENSATION = _move("end compensation", "running -> failed|cancelled", f"status compensation error step step_name progress attempt finished_at {_UNCLAIM}", changes.end_compensation, fenced=True, tells=task_finished)
#: A compensation failed for good: the task fails, its compensation marked failed.
FAIL_COMPENSATION = _move("fail compensation", "running -> failed", f"{_STOP} compensation failed_step", changes.compensation_failed, fenced=True, tells=task_finished)
#: The reaper returns a task whose lease expired to pending at the same step.
REAP = _move("reap", "running -> pending", f"status recoveries {_UNCLAIM}", changes.reap)
#: The reaper fails a task whose lease expired MAX_RECOVERIES times (poison).
POISON = _move("poison", "running -> failed", f"status compensation error failed_step recoveries finished_at {_UNCLAIM}", changes.poison, tells=task_finished)
#: An operator runs a failed or cancelled task again from the step that stopped it.
REQUEUE = _move("requeue", "failed|cancelled -> pending", _REQUEUE, changes.requeue, tells=task_requeued)
#: An operator runs a finished task again from its first step, with an empty state.
RESTART = _move("restart", "failed|cancelled|completed -> pending", f"{_REQUEUE} step step_name state progress", changes.requeue_at, tells=task_requeued)
#: An operator runs a finished task again from a chosen step, with the state before it.
REQUEUE_FROM_STEP = _move("requeue from step", "failed|cancelled|completed -> pending", f"{_REQUEUE} step step_name state progress", changes.requeue_at, tells=task_requeued)
#: An operator cancels a task that is not running: at once.
CANCEL = _move("cancel", "pending|waiting|paused|failed -> cancelled", f"status finished_at pause_requested_at {_UNWAIT}", changes.cancel, refused_while_compensating=True, tells=task_finished)
#: An operator cancels a task that is not running but completed steps to undo: a worker
#: runs their compensations, and the task ends cancelled.
CANCEL_AND_COMPENSATE = _move("cancel", "pending|waiting|paused -> pending", f"status run_after attempt compensation cancel_requested_at pause_requested_at {_UNWAIT}", changes.cancel_and_compensate, refused_while_compensating=True)
#: An operator cancels a running task: it stops after its current step.
REQUEST_CANCEL = _move("cancel", "running -> running", "cancel_requested_at", changes.request_cancel, refused_while_compensating=True)

#: A step waits for a signal or a timer: the claim goes, the task holds no worker. It
#: pauses instead if a pause was requested meanwhile.
WAIT = _move("wait", "running -> waiting|paused", f"status attempt pause_requested_at {_UNWAIT} {_UNCLAIM}", changes.wait, fenced=True, tells=task_waiting)
#: The signal a waiting task waits for arrived, or its timer is due: it is due again.
WAKE = _move("wake", "waiting -> pending", f"status run_after {_UNWAIT}", changes.wake)
#: An operator pauses a task that is not running: at once (a waiting one keeps what it
#: waits for, to show; its timer does not fire).
PAUSE = _move("pause", "pending|waiting -> paused", "status", changes.pause, refused_while_compensating=True)
#: An operator pauses a running task: it pauses after its current step.
REQUEST_PAUSE = _move("pause", "running -> running", "pause_requested_at", changes.request_pause, refused_while_compensating=True)
#: A pause requested while the task ran takes effect, between steps.
PAUSE_AFTER_STEP = _move("pause after step", "running -> paused", f"status pause_requested_at {_UNCLAIM}", changes.pause_after_step, fenced=True, requires={"pause_requested_at__isnull": False, "cancel_requested_at__isnull": True})
#: An operator resumes a paused task: it is due again, at the step it paused at.
RESUME = _move("resume", "paused -> pending", f"status run_after pause_requested_at {_UNWAIT}", changes.resume)
#: An operator resumes a task whose pause was requested while it ran (still running, or
#: pending again after a retry or a lost lease): the request goes.
WITHDRAW_PAUSE = _move("resume", "running|pending -> running|pending", "pause_requested_at", changes.withdraw_pause, requires={"pause_requested_at__isnull": False})

# fmt: on

tree.wake = WAKE

MOVES: tuple[Move, ...] = (
    CLAIM, RENEW, CHECKPOINT, COMPLETE, RETRY, RELEASE, FAIL, END_CANCELLED, TAKE_OVER,
    START_COMPENSATION, COMPENSATE_STEP, END_COMPENSATION, FAIL_COMPENSATION, REAP, POISON,
    REQUEUE, RESTART, REQUEUE_FROM_STEP, CANCEL, CANCEL_AND_COMPENSATE, REQUEST_CANCEL, WAIT,
    WAKE, PAUSE, REQUEST_PAUSE, PAUSE_AFTER_STEP, RESUME, WITHDRAW_PAUSE,
)  # fmt: skip
