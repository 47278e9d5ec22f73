"""A move of the task's state machine, and how operators make one.

The moves themselves are declared in :mod:`salvador_django.transitions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, QuerySet
from django.db.models.functions import Now
from django.dispatch import Signal

from salvador_django.exceptions import InvalidTransition
from salvador_django.status import CompensationStatus, TaskStatus
from salvador_django.transitions.told import apply_told, listened
from salvador_django.transitions.tree import apply_in_family, flips, lock_row

PENDING, RUNNING = TaskStatus.PENDING, TaskStatus.RUNNING
COMPLETED, FAILED, CANCELLED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED
WAITING, PAUSED = TaskStatus.WAITING, TaskStatus.PAUSED
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
    #: Further conditions on the row, beyond its status (``filter()`` keywords).
    requires: Mapping[str, Any] | None = None
    #: The public signal (:mod:`salvador_django.signals`) a task that made the move
    #: is sent once it commits (with the task as the move left it).
    tells: Signal | None = None

    def allows(self, status: str, compensation: str = "") -> bool:
        """Whether a task in ``status`` (and ``compensation``) may make this move."""
        return status in self.sources and not (
            self.refused_while_compensating and compensation == COMPENSATING
        )

    def rows(
        self,
        rows: QuerySet[Any],
        *,
        token: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> QuerySet[Any]:
        """The rows of ``rows`` (narrowed by ``where``) this move may change.

        For a fenced move, only those ``token`` (or one of several tokens) holds. One
        ``filter()`` call: the engine makes a move per step, and each call costs.
        """
        conditions = {**(self.requires or {}), **(where or {})}
        if self.fenced:
            if token is None:
                raise TypeError(f"The {self.name} move is fenced: pass the claim's token.")
            if isinstance(token, str):
                conditions["claimed_by"] = token
            else:
                conditions["claimed_by__in"] = list(token)
        if len(self.sources) == 1:  # "=": the partial indexes' conditions are written so
            conditions["status"] = next(iter(self.sources))
        else:
            conditions["status__in"] = sorted(self.sources)
        rows = rows.filter(**conditions)
        if self.refused_while_compensating:
            rows = rows.exclude(compensation=COMPENSATING)
        return rows

    def apply(
        self,
        rows: QuerySet[Any],
        *,
        token: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        family: bool = True,
        **params: Any,
    ) -> int:
        """Make the move on those of ``rows`` (narrowed by ``where``) that allow it.

        ``params`` go to the move's write. Returns how many rows moved. A move that
        ends or reopens tasks also tells their waiting parents and ends their children
        (:mod:`.tree`); ``family=False`` says the caller knows they have neither.
        """
        changes = reading_first(self.changes(**params))
        selected = self.rows(rows, token=token, where=where)

        def update(selected: QuerySet[Any]) -> int:
            if family and flips(self):
                return apply_in_family(self, selected, changes)
            return selected.update(updated_at=Now(), **changes)

        if listened(self):
            return apply_told(self, selected, update)
        return update(selected)

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
    if len(moves) > 1:
        # The row is locked first, so that it cannot move between two tries (SQLite's
        # first UPDATE takes its database's write lock anyway).
        lock_row(rows, task_id)
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


def reading_first(changes: Changes) -> Changes:
    """``changes`` ordered so that a value that reads a column comes before that column's.

    MySQL and MariaDB evaluate an ``UPDATE``'s assignments left to right, each seeing
    the columns assigned before it (``SET a = 1, b = a`` sets ``b`` to 1); PostgreSQL
    and SQLite read every column as it was. Writing the readers first gives every
    database the second meaning. (A move never has two fields read each other.)
    """
    reads = {name: _columns_read(value) - {name} for name, value in changes.items()}
    ordered: list[str] = []
    left = list(changes)
    while left:
        # The first field that no field still to be written reads: it may be written now.
        name = next((n for n in left if not any(n in reads[other] for other in left)), left[0])
        ordered.append(name)
        left.remove(name)
    return {name: changes[name] for name in ordered}


def _columns_read(value: Any) -> set[str]:
    """The fields an update value reads (``F`` names, ``When`` conditions' lookups)."""
    if isinstance(value, F):
        name = value.deconstruct()[1][0]  # F(name)
        return {str(name).split("__")[0]}
    if isinstance(value, Q):
        found: set[str] = set()
        for child in value.children:
            if isinstance(child, tuple):
                found |= {child[0].split("__")[0]} | _columns_read(child[1])
            else:
                found |= _columns_read(child)
        return found
    found = set()
    for source in getattr(value, "get_source_expressions", lambda: [])():
        found |= _columns_read(source)
    condition = getattr(value, "condition", None)  # a When's Q is not a source expression
    if isinstance(condition, Q):
        found |= _columns_read(condition)
    return found
