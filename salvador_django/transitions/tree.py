"""Moves that end or reopen a task, seen from its parent and its children.

A parent waiting for children (``children_left`` set) is told by the very commit that
finishes an awaited child: its count goes down by one, and the commit that takes it
to zero makes the parent due (``WAKE``). A requeued child counts again. When a task
ends, its unfinished children that are not detached are cancelled (through
:data:`parents_ended`, whose receiver knows the workflows' compensations).

Locks are always taken parent first, then children: a child's ending locks its
parent's row before its own, as a parent's wait and a cascading cancellation do. So
two such transactions wait for each other, never deadlock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Now

from salvador_django import sql
from salvador_django.status import FINISHED, UNFINISHED
from salvador_django.transitions.signals import parents_ended, tasks_due

if TYPE_CHECKING:
    from salvador_django.transitions.move import Changes, Move


#: The move that makes a parent due when its last awaited child ended (``WAKE``, set by
#: the table in :mod:`salvador_django.transitions`, which this module is below).
wake: Move | None = None


_UNKNOWN = sql.UNKNOWN


@dataclass
class Family:
    """The relatives of the rows a move is about to end or reopen, locked."""

    #: (child id, parent id) of each awaited child whose end or reopening counts.
    awaited: list[tuple[Any, Any]] = field(default_factory=list)
    #: (child id, parent id) of a child that counts if it is awaited: the count-down
    #: itself reads that, under its parent's lock (one row moved; no second read).
    unchecked: list[tuple[Any, Any]] = field(default_factory=list)
    #: The rows that have children of their own.
    parents: list[Any] = field(default_factory=list)


def flips(move: Move) -> int:
    """-1 if ``move`` ends unfinished tasks, +1 if it reopens finished ones, else 0."""
    if move.targets <= set(FINISHED) and move.sources - set(FINISHED):
        return -1
    if move.sources & set(FINISHED) and not move.targets & set(FINISHED):
        return 1
    return 0


def apply_in_family(move: Move, selected: QuerySet[Any], changes: Changes) -> int:
    """Update ``selected`` with ``changes`` for ``move``, telling parents and children."""
    with transaction.atomic(using=selected.db):
        family = lock_family(move, selected)
        moved = selected.update(updated_at=Now(), **changes)
        settle(move, selected, family, moved=bool(moved))
    return moved


def lock_family(move: Move, selected: QuerySet[Any]) -> Family:
    """Lock the parents of the children among ``selected``, then those rows.

    Only the rows whose status ``move`` takes across the finished line count; for rows
    with no relatives this is one read. Whether a child is awaited is read once its
    parent is locked: a parent's wait marks its children while it holds its own row.
    Call it inside the move's transaction, before the move.
    """
    relatives = Q(parent__isnull=False)
    if flips(move) < 0:
        relatives |= Q(has_children=True)
    related = _crossing(move, selected).filter(relatives)
    found = list(related.values_list("id", "parent_id", "has_children"))
    if not found:
        return Family()
    parent_ids = sorted({row[1] for row in found if row[1] is not None}, key=str)
    if parent_ids:
        tasks = selected.model._default_manager.using(selected.db)
        _locked(tasks.filter(id__in=parent_ids))
    if len(found) == 1:
        # One row (a worker's or an operator's move): the move re-checks its own
        # conditions, and the count-down whether it is awaited. Its children can only
        # appear through its own step's commit, which this move is, or follows.
        row_id, parent_id, has_children = found[0]
        return Family(
            unchecked=[] if parent_id is None else [(row_id, parent_id)],
            parents=[row_id] if has_children and flips(move) < 0 else [],
        )
    rows = _locked(related, "id", "parent_id", "awaited", "has_children")
    return Family(
        awaited=[(row[0], row[1]) for row in rows if row[1] is not None and row[2]],
        parents=[row[0] for row in rows if row[3] and flips(move) < 0],
    )


def settle(move: Move, selected: QuerySet[Any], family: Family, *, moved: bool = True) -> None:
    """After the move: count the awaited children for their parents; end the children.

    ``moved``: whether the move found its row (one row, ``Family.unchecked``).
    """
    delta = flips(move)
    tasks = selected.model._default_manager.using(selected.db)
    for parent_id, count in Counter(parent for _, parent in family.awaited).items():
        count_children(tasks, parent_id, delta * count)
    if not moved:
        return
    for child_id, parent_id in family.unchecked:
        count_children(tasks, parent_id, delta, child_id=child_id)
    if family.parents:
        parents_ended.send(sender=selected.model, database=selected.db, ids=family.parents)


def count_children(
    tasks: QuerySet[Any], parent_id: Any, delta: int, *, child_id: Any = None
) -> bool:
    """Add ``delta`` to what a parent waiting for children waits for; True if it woke.

    With ``child_id``, only if that child is awaited. Reaching zero makes the parent
    due (``WAKE``): the queues announce it when this commits.
    """
    left = sql.count_children(tasks, parent_id, delta, child_id)
    if left is _UNKNOWN:  # a database without its statement in ``sql``: the ORM
        if child_id is not None and not tasks.filter(id=child_id, awaited=True).exists():
            return False
        waiting = tasks.filter(id=parent_id, children_left__isnull=False)
        left = 0 if waiting.update(children_left=F("children_left") + delta) else None
    if left != 0 or delta > 0:
        return False
    if wake is None or not wake.apply(tasks, where={"id": parent_id, "children_left": 0}):
        return False
    row = tasks.filter(id=parent_id).values_list("workflow", "priority").first()
    if row is not None:
        woken = tasks.model(id=parent_id, workflow=row[0], priority=row[1])
        woken._state.db = tasks.db
        tasks_due.send(sender=tasks.model, tasks=[woken])
    return True


def lock_row(rows: QuerySet[Any], task_id: Any) -> None:
    """Lock one task's row, and its parent's before it (parent first, always)."""
    if not connections[rows.db].features.has_select_for_update:
        return
    row = rows.filter(id=task_id)
    parent_id = row.values_list("parent_id", flat=True).first()
    if parent_id is not None:
        _locked(rows.model._default_manager.using(rows.db).filter(id=parent_id))
    _locked(row)


def _crossing(move: Move, selected: QuerySet[Any]) -> QuerySet[Any]:
    """Those of ``selected`` whose status the move takes across the finished line."""
    other_side = set(UNFINISHED) if flips(move) < 0 else set(FINISHED)
    return selected.filter(status__in=sorted(move.sources & other_side))


def _locked(rows: QuerySet[Any], *fields: str) -> list[Any]:
    """``fields`` of ``rows``, locked in a stable order where the database locks rows."""
    if connections[rows.db].features.has_select_for_update:
        rows = rows.select_for_update().order_by("id")
    return list(rows.values_list(*(fields or ("id",))))
