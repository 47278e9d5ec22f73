"""Moves that end or reopen a task, seen from its parent and its children.

A parent waiting for children (``children_left`` set) is told by the very commit that
finishes an awaited child: its count goes down by one, and the commit that takes it
to zero makes the parent due (``WAKE``). A requeued child counts again. When a task
ends, its unfinished children that are not detached are cancelled (through
:data:`parents_ended`, whose receiver knows the workflows' compensations).

Locks are always taken children first, then their parent: a child's end locks its
own row, then (counting down) its parent's; a parent's wait marks its children
before it moves its own row; a task that ends (or an operator's move on it) locks its
unfinished descendants, deepest first, before its own row. So two such transactions
wait for each other, never deadlock; and the parent's row is held only for the
count-down and the commit, not for the child's whole end.
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
#: How many ids go in one ``IN (...)`` list; how deep a tree of tasks is followed.
_CHUNK = 500
_MAX_DEPTH = 100


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
    """Before ``move`` on ``selected``: what it must tell their parents and children.

    Only the rows whose status ``move`` takes across the finished line count; for rows
    with no relatives this is one read. The unfinished descendants of a row that ends
    are locked now, deepest first (children before parents); the parents are locked
    by the count-down, after the move. Call it inside the move's transaction.
    """
    relatives = Q(parent__isnull=False)
    if flips(move) < 0:
        relatives |= Q(has_children=True)
    related = _crossing(move, selected).filter(relatives)
    found = list(related.values_list("id", "parent_id", "has_children"))
    if not found:
        return Family()
    ending = [row[0] for row in found if row[2] and flips(move) < 0]
    if ending:
        lock_descendants(selected.model._default_manager.using(selected.db), ending)
    if len(found) == 1:
        # One row (a worker's or an operator's move): the move re-checks its own
        # conditions, and the count-down whether it is awaited, once the move holds it.
        row_id, parent_id, _ = found[0]
        return Family(unchecked=[] if parent_id is None else [(row_id, parent_id)], parents=ending)
    # Several rows: locked and read again, so that what is counted is what moves.
    rows = _locked(related, "id", "parent_id", "awaited", "has_children")
    return Family(
        awaited=[(row[0], row[1]) for row in rows if row[1] is not None and row[2]],
        parents=[row[0] for row in rows if row[3] and flips(move) < 0],
    )


def lock_descendants(tasks: QuerySet[Any], ids: list[Any]) -> None:
    """Lock the unfinished, attached descendants of ``ids``, deepest first."""
    if not connections[tasks.db].features.has_select_for_update:
        return
    levels: list[list[Any]] = []
    level = list(ids)
    while level and len(levels) < _MAX_DEPTH:
        below: list[Any] = []
        for chunk in _chunks(level):
            children = tasks.filter(parent_id__in=chunk, detached=False, status__in=UNFINISHED)
            below += children.values_list("id", flat=True)
        if below:
            levels.append(below)
        level = below
    for found in reversed(levels):
        for chunk in _chunks(found):
            _locked(tasks.filter(id__in=chunk))


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
    """Lock one task's row, after its unfinished descendants (children first, always)."""
    if not connections[rows.db].features.has_select_for_update:
        return
    row = rows.filter(id=task_id)
    if row.filter(has_children=True).exists():
        lock_descendants(rows.model._default_manager.using(rows.db), [task_id])
    _locked(row)


def _crossing(move: Move, selected: QuerySet[Any]) -> QuerySet[Any]:
    """Those of ``selected`` whose status the move takes across the finished line."""
    other_side = set(UNFINISHED) if flips(move) < 0 else set(FINISHED)
    return selected.filter(status__in=sorted(move.sources & other_side))


def _locked(rows: QuerySet[Any], *fields: str) -> list[Any]:
    """``fields`` of ``rows``, locked in a stable order where the database locks rows."""
    features = connections[rows.db].features
    if features.has_select_for_update:
        # NO KEY: a child's insert (its foreign key's KEY SHARE lock) is not held up.
        rows = rows.select_for_update(no_key=features.has_select_for_no_key_update)
        rows = rows.order_by("id")
    return list(rows.values_list(*(fields or ("id",))))


def _chunks(ids: list[Any]) -> list[list[Any]]:
    return [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]
