"""What each move of the state machine writes: one function per move, from its parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce, Now

from salvador_django.clock import now_plus
from salvador_django.status import CompensationStatus
from salvador_django.transitions.move import (
    CANCELLED,
    COMPENSATING,
    COMPLETED,
    FAILED,
    PAUSED,
    PENDING,
    RUNNING,
    WAITING,
    Changes,
)

_UNCLAIMED: Changes = {"claimed_by": None, "lease_expires_at": None}
_NOT_WAITING: Changes = {"waiting_for": "", "wake_at": None, "children_left": None}


def keep_failed_step_or_current() -> Case:
    """The step where the task broke: the one recorded already, else its current step."""
    return Case(When(failed_step="", then=F("step_name")), default=F("failed_step"))


def claim(*, claimant: str, lease_seconds: float) -> Changes:
    return {
        "status": RUNNING,
        "claimed_by": claimant,
        "lease_expires_at": now_plus(lease_seconds),
        "started_at": Coalesce(F("started_at"), Now()),
    }


def checkpoint(
    *, step: int, step_name: str, state: Any, progress: Any = None, error: str = ""
) -> Changes:
    changes: Changes = {
        "step": step,
        "step_name": step_name,
        "state": state,
        "attempt": 0,
        "recoveries": 0,
        "error": error,
    }
    if progress is not None:  # a graph's: which steps are done
        changes["progress"] = progress
    return changes


def complete(
    *, step: int, step_name: str, state: Any, return_value: Any = None, progress: Any = None
) -> Changes:
    changes = checkpoint(step=step, step_name=step_name, state=state, progress=progress)
    # The lease expiries of the last step stay counted: a one-step task's (a Django
    # task's) lost attempts, shown in its result; a finished task is never reaped.
    del changes["recoveries"]
    return {
        **changes,
        "return_value": return_value,
        "status": COMPLETED,
        "finished_at": Now(),
        **_UNCLAIMED,
    }


def retry(
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


def stop(status: str) -> Callable[..., Changes]:
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


def start_compensation(
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


def compensate_step(*, step: int, step_name: str, state: Any, progress: Any = None) -> Changes:
    changes: Changes = {
        "step": step,
        "step_name": step_name,
        "state": state,
        "attempt": 0,
        "recoveries": 0,
    }
    if progress is not None:  # a graph's: the undone step is no longer done
        changes["progress"] = progress
    return changes


def end_compensation(*, cancelled: bool, error: str) -> Changes:
    return {
        "status": CANCELLED if cancelled else FAILED,
        "compensation": CompensationStatus.COMPLETED,
        "error": error,
        "step": 0,
        "step_name": "",
        "progress": {},
        "attempt": 0,
        "finished_at": Now(),
        **_UNCLAIMED,
    }


def compensation_failed(*, step: int, step_name: str, attempt: int, error: str) -> Changes:
    return {
        "status": FAILED,
        "compensation": CompensationStatus.FAILED,
        "step": step,
        "step_name": step_name,
        "attempt": attempt,
        "error": error,
        "failed_step": keep_failed_step_or_current(),
        "finished_at": Now(),
        **_UNCLAIMED,
    }


def reap() -> Changes:
    return {"status": PENDING, "recoveries": F("recoveries") + 1, **_UNCLAIMED}


def poison(*, max_recoveries: int) -> Changes:
    return {
        "status": FAILED,
        # A poison compensation stops compensating: an operator must look.
        "compensation": Case(
            When(compensation=COMPENSATING, then=Value(CompensationStatus.FAILED)),
            default=F("compensation"),
        ),
        "error": f"Lease expired {max_recoveries} times: "
        "the step keeps killing or stalling its worker.",
        "failed_step": keep_failed_step_or_current(),
        "recoveries": F("recoveries") + 1,
        "finished_at": Now(),
        **_UNCLAIMED,
    }


def requeue() -> Changes:
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
        "pause_requested_at": None,
        "return_value": None,
        **_NOT_WAITING,
    }


def requeue_at(*, step: int, step_name: str, state: Any, progress: Any = None) -> Changes:
    return {
        **requeue(),
        "step": step,
        "step_name": step_name,
        "state": state,
        "progress": {} if progress is None else progress,
        "compensation": CompensationStatus.NONE,
        "failed_step": "",
    }


def cancel() -> Changes:
    return {"status": CANCELLED, "finished_at": Now(), "pause_requested_at": None, **_NOT_WAITING}


def cancel_and_compensate() -> Changes:
    return {
        "status": PENDING,
        "run_after": Now(),
        "attempt": 0,
        "compensation": COMPENSATING,
        "cancel_requested_at": Now(),
        "pause_requested_at": None,
        **_NOT_WAITING,
    }


def wait(
    *, waiting_for: str, wake_at: Any, attempt: int, children_left: int | None = None
) -> Changes:
    return {
        # A pause requested while the step ran takes effect now: the task pauses, still
        # showing what it waits for.
        "status": Case(
            When(pause_requested_at__isnull=False, then=Value(PAUSED)), default=Value(WAITING)
        ),
        "pause_requested_at": None,
        "waiting_for": waiting_for,
        "wake_at": wake_at,
        "children_left": children_left,
        "attempt": attempt,
        **_UNCLAIMED,
    }


def wake() -> Changes:
    return {"status": PENDING, "run_after": Now(), **_NOT_WAITING}


def pause() -> Changes:
    return {"status": PAUSED}


def request_pause() -> Changes:
    return {"pause_requested_at": Coalesce(F("pause_requested_at"), Now())}


def pause_after_step() -> Changes:
    return {"status": PAUSED, "pause_requested_at": None, **_UNCLAIMED}


def resume() -> Changes:
    return {"status": PENDING, "run_after": Now(), "pause_requested_at": None, **_NOT_WAITING}


def withdraw_pause() -> Changes:
    return {"pause_requested_at": None}


def request_cancel() -> Changes:
    return {"cancel_requested_at": Coalesce(F("cancel_requested_at"), Now())}


def renew(*, lease_seconds: float) -> Changes:
    return {"lease_expires_at": now_plus(lease_seconds)}


def release() -> Changes:
    return {"status": PENDING, **_UNCLAIMED}


def take_over(*, claimant: str) -> Changes:
    return {"claimed_by": claimant}
