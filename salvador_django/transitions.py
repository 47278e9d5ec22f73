"""The task's state machine: every move of a task, declared once.

Each :class:`Move` names the statuses it is allowed from, the statuses it may leave
the task in, the fields it writes, and whether only the worker holding the task's
claim may make it (``fenced``: the write is conditional on ``claimed_by``). The
engine, the reaper, ``Task.requeue()``/``Task.cancel()``, the bulk commands and the
admin all write through these moves; none of them restates a status rule.

Applying a move is one conditional ``UPDATE``: two callers racing on one task move
it once, and the second finds nothing to update. This module knows querysets, not
the models, so every layer above the status enums may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, F, QuerySet, Value, When
from django.db.models.functions import Coalesce, Now
from django.dispatch import Signal

from salvador_django.clock import now_plus
from salvador_django.exceptions import InvalidTransition
from salvador_django.status import CompensationStatus, TaskStatus

PENDING, RUNNING = TaskStatus.PENDING, TaskStatus.RUNNING
COMPLETED, FAILED, CANCELLED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED
COMPENSATING = CompensationStatus.RUNNING

Changes = dict[str, Any]


@dataclass(frozen=True)
class Move:
    """One move of a task: where it may start, where it leaves the task, what it writes."""

    name: str
    sources: frozenset[str]
    #: The statuses the task may be left in (a move that keeps the status names it).
    targets: frozenset[str]
    #: Every field the move may write (``updated_at`` is written by every move).
    fields: frozenset[str]
    changes: Callable[..., Changes]
    #: Only the worker holding the claim may make it: the update is fenced on its token.
    fenced: bool = False
    #: Refused while the task undoes its steps: how it ends is already decided.
    refused_while_compensating: bool = False

    def allows(self, status: str, compensation: str = "") -> bool:
        """Whether a task in ``status`` (and ``compensation``) may make this move."""
        return status in self.sources and not (
            self.refused_while_compensating and compensation == COMPENSATING
        )

    def rows(
        self, rows: QuerySet[Any], *, token: str | Sequence[str] | None = None
    ) -> QuerySet[Any]:
        """The rows of ``rows`` this move may change (for a fenced move: held by ``token``)."""
        if self.fenced:
            if token is None:
                raise TypeError(f"The {self.name} move is fenced: pass the claim's token.")
            rows = (
                rows.filter(claimed_by=token)
                if isinstance(token, str)
                else rows.filter(claimed_by__in=list(token))
            )
        if len(self.sources) == 1:  # "=": the partial indexes' conditions are written so
            rows = rows.filter(status=next(iter(self.sources)))
        else:
            rows = rows.filter(status__in=sorted(self.sources))
        if self.refused_while_compensating:
            rows = rows.exclude(compensation=COMPENSATING)
        return rows

    def apply(
        self, rows: QuerySet[Any], *, token: str | Sequence[str] | None = None, **params: Any
    ) -> int:
        """Make the move on those of ``rows`` that allow it; how many rows moved."""
        return self.rows(rows, token=token).update(updated_at=Now(), **self.changes(**params))

    def refusal(self, task_id: Any, status: str, compensation: str = "") -> InvalidTransition:
        """The error for a task in ``status`` that may not make this move."""
        why = (
            "its compensation is running"
            if status in self.sources and compensation == COMPENSATING
            else f"it is {status}"
        )
        allowed = [str(status) for status in TaskStatus if status in self.sources]
        listed = " or ".join([", ".join(allowed[:-1]), allowed[-1]] if allowed[1:] else allowed)
        return InvalidTransition(
            f"Cannot {self.name} task {task_id}: {why}; allowed while {listed}.", status=status
        )


def perform(moves: Sequence[Move], rows: QuerySet[Any], task_id: Any, **params: Any) -> Move:
    """Make the first of ``moves`` the task allows (an operator's move); returns it.

    Raises :class:`InvalidTransition` naming the task's status when none applies, and
    the model's ``DoesNotExist`` when the task is gone. Call it inside a transaction.
    """
    task = rows.filter(id=task_id)
    for move in moves:
        if move.apply(task, **params):
            return move
    row = task.values_list("status", "compensation").first()
    if row is None:
        raise rows.model.DoesNotExist(f"Task {task_id} does not exist.")
    status, compensation = row
    raise _refusal(moves, task_id, status, compensation)


def _refusal(
    moves: Sequence[Move], task_id: Any, status: str, compensation: str
) -> InvalidTransition:
    merged = Move(
        name=moves[0].name,
        sources=frozenset().union(*(move.sources for move in moves)),
        targets=frozenset(),
        fields=frozenset(),
        changes=dict,
        refused_while_compensating=any(m.refused_while_compensating for m in moves),
    )
    return merged.refusal(task_id, status, compensation)


# -- what the moves write --------------------------------------------------------------

_UNCLAIMED: Changes = {"claimed_by": None, "lease_expires_at": None}


def _keep_failed_step_or_current() -> Case:
    """The step where the task broke: the one recorded already, else its current step."""
    return Case(When(failed_step="", then=F("step_name")), default=F("failed_step"))


def _claim(*, claimant: str, lease_seconds: float) -> Changes:
    return {
        "status": RUNNING,
        "claimed_by": claimant,
        "lease_expires_at": now_plus(lease_seconds),
        "started_at": Coalesce(F("started_at"), Now()),
    }


def _checkpoint(*, step: int, step_name: str, state: Any) -> Changes:
    return {
        "step": step,
        "step_name": step_name,
        "state": state,
        "attempt": 0,
        "recoveries": 0,
        "error": "",
    }


def _complete(*, step: int, step_name: str, state: Any) -> Changes:
    return {
        **_checkpoint(step=step, step_name=step_name, state=state),
        "status": COMPLETED,
        "finished_at": Now(),
        **_UNCLAIMED,
    }


def _retry(
    *, step: int, step_name: str, delay: float, attempt: int, error: str | None = None
) -> Changes:
    changes: Changes = {
        "status": PENDING,
        "step": step,
        "step_name": step_name,
        "run_after": now_plus(delay),
        "attempt": attempt,
        **_UNCLAIMED,
    }
    if error is not None:  # a compensation's retry keeps the error that started it
        changes["error"] = error
    return changes


def _stop(status: str) -> Callable[..., Changes]:
    def changes(
        *, step: int, step_name: str, attempt: int | None = None, error: str | None = None
    ) -> Changes:
        written: Changes = {
            "status": status,
            "step": step,
            "step_name": step_name,
            "finished_at": Now(),
            **_UNCLAIMED,
        }
        if attempt is not None:
            written["attempt"] = attempt
        if error is not None:
            written["error"] = error
        if status == FAILED:
            written["failed_step"] = step_name
        return written

    return changes


def _start_compensation(
    *, step: int, step_name: str, error: str | None, cancelled: bool, hand_off: bool
) -> Changes:
    changes: Changes = {
        "step": step,
        "step_name": step_name,
        "attempt": 0,
        "compensation": COMPENSATING,
    }
    if error is not None:
        changes["error"] = error
    if not cancelled:  # whether the task ends cancelled is decided now, for good
        changes.update(cancel_requested_at=None, failed_step=step_name)
    if hand_off:  # a worker, not this watchdog or supervisor, runs the compensations
        changes.update(status=PENDING, run_after=Now(), **_UNCLAIMED)
    return changes


def _compensate_step(*, step: int, step_name: str, state: Any) -> Changes:
    return {"step": step, "step_name": step_name, "state": state, "attempt": 0, "recoveries": 0}


def _end_compensation(*, cancelled: bool, error: str) -> Changes:
    return {
        "status": CANCELLED if cancelled else FAILED,
        "compensation": CompensationStatus.COMPLETED,
        "error": error,
        "step": 0,
        "step_name": "",
        "attempt": 0,
        "finished_at": Now(),
        **_UNCLAIMED,
    }


def _compensation_failed(*, step: int, step_name: str, attempt: int, error: str) -> Changes:
    return {
        "status": FAILED,
        "compensation": CompensationStatus.FAILED,
        "step": step,
        "step_name": step_name,
        "attempt": attempt,
        "error": error,
        "failed_step": _keep_failed_step_or_current(),
        "finished_at": Now(),
        **_UNCLAIMED,
    }


def _reap() -> Changes:
    return {"status": PENDING, "recoveries": F("recoveries") + 1, **_UNCLAIMED}


def _poison(*, max_recoveries: int) -> Changes:
    return {
        "status": FAILED,
        # A poison compensation stops compensating: an operator must look.
        "compensation": Case(
            When(compensation=COMPENSATING, then=Value(CompensationStatus.FAILED)),
            default=F("compensation"),
        ),
        "error": f"Lease expired {max_recoveries} times: "
        "the step keeps killing or stalling its worker.",
        "failed_step": _keep_failed_step_or_current(),
        "recoveries": F("recoveries") + 1,
        "finished_at": Now(),
        **_UNCLAIMED,
    }


def _requeue() -> Changes:
    return {
        "status": PENDING,
        "run_after": Now(),
        "attempt": 0,
        "recoveries": 0,
        "error": "",
        "finished_at": None,
        "cancel_requested_at": None,
        # A task whose compensation failed resumes it (its completed steps must still
        # be undone, and where it broke stays known); any other runs forward again.
        "compensation": Case(
            When(compensation=CompensationStatus.FAILED, then=Value(COMPENSATING)),
            default=Value(CompensationStatus.NONE),
        ),
        "failed_step": Case(
            When(compensation=CompensationStatus.FAILED, then=F("failed_step")),
            default=Value(""),
        ),
    }


def _requeue_at(*, step: int, step_name: str, state: Any) -> Changes:
    return {
        **_requeue(),
        "step": step,
        "step_name": step_name,
        "state": state,
        "compensation": CompensationStatus.NONE,
        "failed_step": "",
    }


def _cancel() -> Changes:
    return {"status": CANCELLED, "finished_at": Now()}


def _request_cancel() -> Changes:
    return {"cancel_requested_at": Coalesce(F("cancel_requested_at"), Now())}


_CHECKPOINT = "step step_name state attempt recoveries error"
_UNCLAIM = "claimed_by lease_expires_at"
_STOP = f"status step step_name attempt error finished_at {_UNCLAIM}"
_REQUEUE = (
    "status run_after attempt recoveries error finished_at cancel_requested_at "
    "compensation failed_step"
)


def _move(
    name: str, path: str, fields: str, changes: Callable[..., Changes], **flags: bool
) -> Move:
    """A move from ``path`` ("pending|failed -> cancelled") writing ``fields`` (space-separated)."""
    sources, targets = (frozenset(side.split("|")) for side in path.replace(" ", "").split("->"))
    return Move(name, sources, targets, frozenset(fields.split()), changes, **flags)


def _renew(*, lease_seconds: float) -> Changes:
    return {"lease_expires_at": now_plus(lease_seconds)}


def _release() -> Changes:
    return {"status": PENDING, **_UNCLAIMED}


def _take_over(*, claimant: str) -> Changes:
    return {"claimed_by": claimant}


# -- the table ---------------------------------------------------------------------------
# fmt: off

#: A worker takes a due task, with a lease (the queues' claim statements write the same).
CLAIM = _move("claim", "pending -> running", "status claimed_by lease_expires_at started_at", _claim)
#: A heartbeat extends the lease of a task its worker still holds.
RENEW = _move("renew", "running -> running", "lease_expires_at", _renew, fenced=True)
#: A step completed and another follows: progress, state, and the attempt count reset.
CHECKPOINT = _move("checkpoint", "running -> running", _CHECKPOINT, _checkpoint, fenced=True)
#: The last step completed.
COMPLETE = _move("complete", "running -> completed", f"{_CHECKPOINT} {_UNCLAIM} status finished_at", _complete, fenced=True)
#: An attempt failed and another is due after a backoff (forward steps and compensations).
RETRY = _move("retry", "running -> pending", f"status step step_name run_after attempt error {_UNCLAIM}", _retry, fenced=True)
#: The worker stops (shutdown) and hands the task back at its current step.
RELEASE = _move("release", "running -> pending", f"status {_UNCLAIM}", _release, fenced=True)
#: A step's attempts are spent (or its failure is permanent): the task fails there.
FAIL = _move("fail", "running -> failed", f"{_STOP} failed_step", _stop(FAILED), fenced=True)
#: A cancellation requested while the task ran takes effect (between steps, or at a failure).
END_CANCELLED = _move("end cancelled", "running -> cancelled", _STOP, _stop(CANCELLED), fenced=True)
#: A watchdog takes the claim of an attempt that hung past its timeout.
TAKE_OVER = _move("take over", "running -> running", "claimed_by", _take_over, fenced=True)
#: The task failed or was cancelled and completed steps have compensations: undo them.
START_COMPENSATION = _move("start compensation", "running -> running|pending", f"step step_name attempt compensation error cancel_requested_at failed_step status run_after {_UNCLAIM}", _start_compensation, fenced=True)
#: One compensation completed: one step fewer to undo.
COMPENSATE_STEP = _move("compensate step", "running -> running", "step step_name state attempt recoveries", _compensate_step, fenced=True)
#: Every compensation completed: the task ends failed (or cancelled), compensated.
END_COMPENSATION = _move("end compensation", "running -> failed|cancelled", f"status compensation error step step_name attempt finished_at {_UNCLAIM}", _end_compensation, fenced=True)
#: A compensation failed for good: the task fails, its compensation marked failed.
FAIL_COMPENSATION = _move("fail compensation", "running -> failed", f"{_STOP} compensation failed_step", _compensation_failed, fenced=True)
#: The reaper returns a task whose lease expired to pending at the same step.
REAP = _move("reap", "running -> pending", f"status recoveries {_UNCLAIM}", _reap)
#: The reaper fails a task whose lease expired MAX_RECOVERIES times (poison).
POISON = _move("poison", "running -> failed", f"status compensation error failed_step recoveries finished_at {_UNCLAIM}", _poison)
#: An operator runs a failed or cancelled task again from the step that stopped it.
REQUEUE = _move("requeue", "failed|cancelled -> pending", _REQUEUE, _requeue)
#: An operator runs a finished task again from its first step, with an empty state.
RESTART = _move("restart", "failed|cancelled|completed -> pending", f"{_REQUEUE} step step_name state", _requeue_at)
#: An operator runs a finished task again from a chosen step, with the state before it.
REQUEUE_FROM_STEP = _move("requeue from step", "failed|cancelled|completed -> pending", f"{_REQUEUE} step step_name state", _requeue_at)
#: An operator cancels a task that is not running: at once.
CANCEL = _move("cancel", "pending|failed -> cancelled", "status finished_at", _cancel, refused_while_compensating=True)
#: An operator cancels a running task: it stops after its current step.
REQUEST_CANCEL = _move("cancel", "running -> running", "cancel_requested_at", _request_cancel, refused_while_compensating=True)

# fmt: on

MOVES: tuple[Move, ...] = (
    CLAIM, RENEW, CHECKPOINT, COMPLETE, RETRY, RELEASE, FAIL, END_CANCELLED, TAKE_OVER,
    START_COMPENSATION, COMPENSATE_STEP, END_COMPENSATION, FAIL_COMPENSATION, REAP, POISON,
    REQUEUE, RESTART, REQUEUE_FROM_STEP, CANCEL, REQUEST_CANCEL,
)  # fmt: skip

#: Sent inside the transaction of an operator's move that made ``tasks`` due; the
#: queues announce them when it commits (a hook, so the models need not know queues).
tasks_due = Signal()
