"""What operators do to tasks from the admin: requeue, restart, cancel, pause, resume,
and the report.

Each operation makes moves of the state machine (:mod:`salvador_django.transitions`)
through :meth:`Task.requeue`, :meth:`Task.cancel`, :meth:`Task.pause` and
:meth:`Task.resume`, so the admin honours exactly the contract's rules and restates
none of them; a task
in a status that does not allow it is skipped and the report says why. The
transitions are conditional updates: two operators acting on the same task at
once change it once, and the second is told it already moved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from salvador_django import transitions
from salvador_django.exceptions import InvalidTransition, WorkflowNotFound
from salvador_django.models import Task
from salvador_django.registry import registry
from salvador_django.status import TaskStatus
from salvador_django.transitions import Move

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise


@dataclass(frozen=True)
class Operation:
    """One thing an operator can do to a task."""

    name: str
    label: _StrPromise
    done: _StrPromise
    permission: str  # the ModelAdmin's has_<permission>_permission
    #: The state machine's moves it makes (the first the task allows).
    moves: tuple[Move, ...]
    apply: Callable[[Task], None]
    #: It reads the task's workflow (a restart: its first step), so it needs it registered.
    needs_workflow: bool = False
    #: Whether it left a task only asked to stop or pause after its current step, and
    #: how the report counts those.
    requested: Callable[[Task], bool] = lambda task: False
    requested_note: Callable[[int], str] | None = None

    @property
    def allowed(self) -> frozenset[str]:
        """The statuses it is allowed from."""
        return frozenset().union(*(move.sources for move in self.moves))

    def allows(self, task: Task) -> bool:
        if self.needs_workflow and task.workflow not in registry:
            return False
        return any(
            move.allows(task.status, task.compensation) and _meets(task, move.requires)
            for move in self.moves
        )


def _meets(task: Task, requires: Mapping[str, Any] | None) -> bool:
    """Whether ``task`` meets a move's further conditions (``filter()`` keywords).

    Only ``field`` and ``field__isnull`` are read here; any other lookup is left to
    the database, which checks every condition when the move is made.
    """
    for key, wanted in (requires or {}).items():
        name, _sep, lookup = key.partition("__")
        value = getattr(task, name)
        if (lookup == "isnull" and (value is None) != wanted) or (not lookup and value != wanted):
            return False
    return True


def _cancel_requested(count: int) -> str:
    return ngettext(
        "%(count)d cancel requested (stops after its current step)",
        "%(count)d cancel requested (they stop after their current step)",
        count,
    ) % {"count": count}


def _pause_requested(count: int) -> str:
    return ngettext(
        "%(count)d pause requested (pauses after its current step)",
        "%(count)d pause requested (they pause after their current step)",
        count,
    ) % {"count": count}


REQUEUE = Operation(
    name="requeue",
    label=_("Requeue from the failed step"),
    done=_("requeued"),
    permission="requeue",
    moves=(transitions.REQUEUE,),
    apply=lambda task: task.requeue(),
)
RESTART = Operation(
    name="restart",
    label=_("Restart from the first step"),
    done=_("restarted"),
    permission="requeue",
    moves=(transitions.RESTART,),
    apply=lambda task: task.requeue(from_start=True),
    needs_workflow=True,
)
CANCEL = Operation(
    name="cancel",
    label=_("Cancel"),
    done=_("cancelled"),
    permission="cancel",
    moves=(transitions.CANCEL, transitions.REQUEST_CANCEL),
    apply=lambda task: task.cancel(),
    requested=lambda task: task.cancel_requested,
    requested_note=_cancel_requested,
)
PAUSE = Operation(
    name="pause",
    label=_("Pause"),
    done=_("paused"),
    permission="pause",
    moves=(transitions.PAUSE, transitions.REQUEST_PAUSE),
    apply=lambda task: task.pause(),
    requested=lambda task: task.pause_requested,
    requested_note=_pause_requested,
)
RESUME = Operation(
    name="resume",
    label=_("Resume"),
    done=_("resumed"),
    permission="pause",
    moves=(transitions.RESUME, transitions.WITHDRAW_PAUSE),
    apply=lambda task: task.resume(),
)
OPERATIONS = {operation.name: operation for operation in (REQUEUE, RESTART, PAUSE, RESUME, CANCEL)}


@dataclass
class Report:
    """What an operation did to each task it was given."""

    operation: Operation
    done: list[Task] = field(default_factory=list)
    requested: list[Task] = field(default_factory=list)  # running: they act after their step
    skipped: Counter[str] = field(default_factory=Counter)

    def message(self) -> str:
        """E.g. "3 requeued, 1 skipped: already running"."""
        parts = [f"{len(self.done)} {self.operation.done}"]
        if self.requested and self.operation.requested_note is not None:
            parts.append(self.operation.requested_note(len(self.requested)))
        for reason, count in sorted(self.skipped.items()):
            parts.append(
                ngettext("%(count)d skipped: %(reason)s", "%(count)d skipped: %(reason)s", count)
                % {"count": count, "reason": reason}
            )
        return ", ".join(parts)


def perform(operation: Operation, tasks: Iterable[Task]) -> Report:
    """Apply ``operation`` to each of ``tasks``; never raises for a refused transition
    or, for a restart, a task whose workflow is no longer registered."""
    report = Report(operation)
    for task in tasks:
        try:
            operation.apply(task)
        except InvalidTransition as exc:
            report.skipped[_skip_reason(exc.status)] += 1
        except Task.DoesNotExist:
            report.skipped[gettext("deleted")] += 1
        except WorkflowNotFound:  # a deploy removed it: nothing was changed
            report.skipped[gettext("workflow not registered")] += 1
        else:
            if operation.requested(task):
                report.requested.append(task)
            else:
                report.done.append(task)
    return report


def _skip_reason(status: str | None) -> str:
    if status is None:
        return gettext("not allowed")
    label = TaskStatus(status).label
    return gettext("already %(status)s") % {"status": str(label).lower()}
