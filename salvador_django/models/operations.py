"""What operators do to a task: requeue it, cancel it (and, with it, its children)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.db import models, transaction

from salvador_django import transitions
from salvador_django.models.waits import forget_waits
from salvador_django.registry import registry
from salvador_django.status import UNFINISHED, CompensationStatus, StepRunStatus, TaskStatus
from salvador_django.transitions.signals import parents_ended
from salvador_django.transitions.tree import lock_row

#: How many ids go in one ``IN (...)`` list.
_CHUNK = 500


class Operations:
    """``Task``'s operators' moves: requeue and cancel."""

    if TYPE_CHECKING:  # given by Task
        id: Any
        workflow: str
        objects: ClassVar[Any]
        DoesNotExist: ClassVar[type[Exception]]

        def _alias(self) -> str: ...
        def refresh_from_db(self, *args: Any, **kwargs: Any) -> None: ...

    def requeue(self, from_start: bool = False, from_step: str | None = None) -> None:
        """Run a failed or cancelled task again from the step that stopped it.

        With ``from_start`` the task restarts at its first step with an empty state;
        with ``from_step`` it runs again from that step, with the state checkpointed
        after the step before it. Both are also allowed for completed tasks. Raises
        :class:`InvalidTransition` for any other status (and when another operator
        moved it first), ``ValueError`` for a step the workflow does not have.
        """
        if from_start and from_step is not None:
            raise ValueError("Pass from_start or from_step, not both.")
        alias = self._alias()
        tasks = type(self).objects.using(alias)
        with transaction.atomic(using=alias):
            if from_step is not None and not registry.get(self.workflow).graph.linear:
                move, params = transitions.REQUEUE_FROM_STEP, self._graph_restart(from_step, alias)
            elif from_step is not None:
                step, state = self._restart_point(from_step, alias)
                move = transitions.REQUEUE_FROM_STEP
                params = {"step": step, "step_name": from_step, "state": state}
            elif from_start:
                steps = registry.get(self.workflow).steps
                move = transitions.RESTART
                params = {"step": 0, "step_name": steps[0].name if steps else "", "state": {}}
            else:
                move, params = transitions.REQUEUE, {}
            # A compensated task runs again from its first step: as from the start.
            compensated = tasks.filter(id=self.id, compensation=CompensationStatus.COMPLETED)
            from_start = from_start or (move is transitions.REQUEUE and compensated.exists())
            transitions.perform([move], tasks, self.id, **params)
            forget_waits(alias, self, from_start=from_start, from_step=from_step)
            self.refresh_from_db(using=alias)
            transitions.tasks_due.send(sender=type(self), tasks=[self])

    def _graph_restart(self, step_name: str, alias: str) -> dict[str, Any]:
        """A graph task run again from ``step_name``: it and every step after it, not done.

        The other steps stay done; the state is the task's current one.
        """
        graph = registry.get(self.workflow).graph
        if step_name not in graph.names:
            raise ValueError(
                f"Workflow {self.workflow!r} has no step {step_name!r} "
                f"(steps: {', '.join(graph.names)})."
            )
        row = type(self).objects.using(alias).filter(id=self.id)
        current = row.values_list("status", "compensation", "progress", "state").first()
        if current is None:
            raise type(self).DoesNotExist(f"Task {self.id} does not exist.")
        status, compensation, progress, state = current
        if not transitions.REQUEUE_FROM_STEP.allows(status, compensation):
            raise transitions.REQUEUE_FROM_STEP.refusal(self.id, status, compensation)
        again = graph.downstream([step_name])
        done = [name for name in (progress or {}).get("done", []) if name not in again]
        skipped = [name for name in (progress or {}).get("skipped", []) if name in done]
        return {
            "step": len(done),
            "step_name": step_name,
            "state": state,
            "progress": {"done": done, "skipped": skipped},
        }

    def _restart_point(self, step_name: str, alias: str) -> tuple[int, dict[str, Any]]:
        """The index of ``step_name`` and the state checkpointed after the step before it.

        Only a step the task has reached in its current run qualifies: the steps before
        it completed (and were not undone by a compensation) and recorded their state.
        """
        row = type(self).objects.using(alias).filter(id=self.id)
        current = row.values_list("status", "compensation", "step").first()
        if current is None:
            raise type(self).DoesNotExist(f"Task {self.id} does not exist.")
        status, compensation, progress = current
        if not transitions.REQUEUE_FROM_STEP.allows(status, compensation):
            raise transitions.REQUEUE_FROM_STEP.refusal(self.id, status, compensation)
        steps = [step.name for step in registry.get(self.workflow).steps]
        if step_name not in steps:
            raise ValueError(
                f"Workflow {self.workflow!r} has no step {step_name!r} (steps: {', '.join(steps)})."
            )
        index = steps.index(step_name)
        if index > progress:
            reached = ", ".join(steps[: progress + 1])
            raise ValueError(
                f"Task {self.id} has not reached step {step_name!r}: it can run again from "
                f"{reached}."
            )
        if index == 0:
            return 0, {}
        state = (
            _step_runs(self)
            .objects.using(alias)
            .filter(task_id=self.id, name=steps[index - 1], status=StepRunStatus.COMPLETED)
            .filter(compensation=False, state__isnull=False)
            .order_by("-id")
            .values_list("state", flat=True)
            .first()
        )
        if state is None:  # completed before step runs recorded their state (migration 0006)
            raise ValueError(
                f"Task {self.id} cannot run again from step {step_name!r}: no state was "
                f"recorded after {steps[index - 1]!r}; requeue it from its first step."
            )
        return index, state

    def cancel(self) -> None:
        """Cancel the task: a pending, waiting, paused or failed one at once, a running one
        after its step.

        For a running task this records the request (:attr:`cancel_requested`); its
        worker stops after the current step and the task ends ``cancelled``. A pending,
        waiting or paused task whose completed steps have compensations is handed to a
        worker, which runs them and ends it ``cancelled``. Raises
        :class:`InvalidTransition` for a completed or cancelled task.
        """
        alias = self._alias()
        tasks = type(self).objects.using(alias)
        with transaction.atomic(using=alias):
            moves = [transitions.CANCEL, transitions.REQUEST_CANCEL]
            if self._compensates_before(tasks):
                moves.insert(0, transitions.CANCEL_AND_COMPENSATE)
            move = transitions.perform(moves, tasks, self.id)
            self.refresh_from_db(using=alias)
            if move is transitions.CANCEL_AND_COMPENSATE:
                transitions.tasks_due.send(sender=type(self), tasks=[self])

    def _compensates_before(self, tasks: models.QuerySet[Any]) -> bool:
        """Whether a step the task completed has a compensation (read from its row)."""
        lock_row(tasks, self.id)  # no step may complete between this and the move
        step = tasks.filter(id=self.id).values_list("step", flat=True).first()
        return compensates_before(self.workflow, step or 0)


def compensates_before(workflow: str, step: int) -> bool:
    """Whether a task of ``workflow`` that completed ``step`` steps has one to undo."""
    if not step or workflow not in registry.names():
        return False
    return any(s.compensate is not None for s in registry.get(workflow).steps[:step])


def cancel_children(sender: Any, *, database: str, ids: list[Any], **kwargs: Any) -> None:
    """The tasks ``ids`` ended: cancel their unfinished children that are not detached.

    In the transaction that ended them. Each child moves as ``Task.cancel()`` would
    move it: a running one after its step, one with steps to undo through its
    compensations; its own children follow when it ends.
    """
    tasks = sender._default_manager.using(database)
    for start in range(0, len(ids), _CHUNK):
        children = tasks.filter(
            parent_id__in=ids[start : start + _CHUNK], detached=False, status__in=UNFINISHED
        )
        transitions.REQUEST_CANCEL.apply(children.filter(status=TaskStatus.RUNNING))
        rows = list(
            children.exclude(status=TaskStatus.RUNNING).values_list("id", "workflow", "step")
        )
        undo = [row[0] for row in rows if compensates_before(row[1], row[2])]
        plain = [row[0] for row in rows if row[0] not in set(undo)]
        if plain:
            transitions.CANCEL.apply(tasks.filter(id__in=plain))
        if undo and transitions.CANCEL_AND_COMPENSATE.apply(tasks.filter(id__in=undo)):
            due = list(tasks.filter(id__in=undo, status=TaskStatus.PENDING))
            transitions.tasks_due.send(sender=sender, tasks=due)


parents_ended.connect(cancel_children, dispatch_uid="salvador_cancel_children")


def _step_runs(task: Any) -> Any:
    return task._meta.get_field("step_runs").related_model
