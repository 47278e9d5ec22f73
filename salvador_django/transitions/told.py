"""A move whose public signal has receivers: who moved is known, and told on commit.

The signals of :mod:`salvador_django.signals` that a move makes true (``task_finished``,
``task_requeued``, ``task_waiting``) are declared with the move (``Move.tells``). When
nobody listens, a move is one ``UPDATE`` as always; when somebody does, the ids are
read first (in the move's transaction), and the tasks that moved are read again after
it, so that each receiver gets the task as the move left it. A row another transaction
moved meanwhile is not reported twice: only rows now in one of the move's targets are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import QuerySet

from salvador_django import signals

if TYPE_CHECKING:
    from salvador_django.transitions.move import Move

_CHUNK = 500


def listened(move: Move) -> bool:
    """Whether ``move`` tells a signal somebody listens to."""
    return move.tells is not None and signals.listened(move.tells)


def apply_told(move: Move, selected: QuerySet[Any], update: Callable[[QuerySet[Any]], int]) -> int:
    """Make ``move`` on ``selected`` through ``update``; tell its signal on commit."""
    assert move.tells is not None
    database = selected.db
    with transaction.atomic(using=database):
        ids = list(selected.values_list("id", flat=True))
        if not ids:
            return 0
        moved = sum(update(selected.filter(id__in=chunk)) for chunk in _chunks(ids))
        if not moved:
            return 0
        tasks = selected.model._default_manager.using(database)
        for chunk in _chunks(ids):
            for task in tasks.filter(id__in=chunk, status__in=sorted(move.targets)):
                signals.send_on_commit(
                    move.tells, type(task), database, task=task, **arguments(move, task)
                )
    return moved


def arguments(move: Move, task: Any) -> dict[str, Any]:
    """The arguments of the signal ``move`` tells, beyond ``task``."""
    if move.tells is signals.task_finished:
        return {"status": str(task.status)}
    if move.tells is signals.task_requeued:
        return {"from_start": move.name == "restart", "step": task.step_name}
    if move.tells is signals.task_waiting:
        return {"waiting_for": task.waiting_for}
    return {}


def _chunks(ids: list[Any]) -> list[list[Any]]:
    return [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]
