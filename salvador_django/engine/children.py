"""Child tasks started by a step, and waiting for them (``task.start_child`` & co.).

A step's children are written with its next commit (its checkpoint, or the wait it
stops at), so a step that fails or loses its lease starts none, and one that runs
again finds those it started by their key (:class:`StepChildren`). Waiting for
children is a wait like the others (:mod:`.waits`): the task holds no worker, and
the commit that finishes the last awaited child makes it due again
(:mod:`salvador_django.transitions.tree`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections

from salvador_django import dialect, signals, transitions
from salvador_django.definitions import Workflow
from salvador_django.engine.blocked import Blocked, Suspend, wait_seconds
from salvador_django.exceptions import (
    ChildFailed,
    ConfigurationError,
    InvalidChild,
    PayloadError,
    WaitsChanged,
    WaitTimeout,
    WorkflowNotFound,
)
from salvador_django.models import CHILD_KEY_MAX_LENGTH, Task, check_name
from salvador_django.registry import registry
from salvador_django.status import FINISHED, UNFINISHED, TaskStatus, WaitKind, WaitOutcome
from salvador_django.submission import new_task

if TYPE_CHECKING:
    from salvador_django.engine.waits import StepWaits

#: How many ids go in one ``IN (...)`` list (SQLite's limit on parameters is 999 on
#: old builds).
_CHUNK = 500
#: Positional keys ("#1", "#2", ...) start with it; a key given by the step may not.
_POSITIONAL = "#"


@dataclass
class StepChildren:
    """The children one run of one step started, and its waits for them."""

    waits: StepWaits
    calls: int = 0
    #: Every child this run started (or found started by an earlier run), in call order.
    started: list[Task] = field(default_factory=list)
    #: Those not written yet: with the step's next commit.
    new: list[Task] = field(default_factory=list)
    _new_keys: set[str] = field(default_factory=set)
    _existing: dict[str, Task] | None = None

    # -- the calls a step makes ---------------------------------------------------------

    def start_child(
        self,
        workflow: str | Workflow,
        body: Any = None,
        *,
        key: str | None = None,
        meta: dict[str, str] | None = None,
        priority: int | None = None,
        run_after: datetime | None = None,
        detached: bool = False,
    ) -> Task:
        self.calls += 1
        name = self._workflow_name(workflow)
        child_key = self._key(key)
        found = self._existing_children().get(child_key)
        if found is not None:
            if found.workflow != name:
                raise WaitsChanged(
                    f"Step {self.waits.step_name!r} started a child of workflow "
                    f"{found.workflow!r} under key {child_key!r} when it ran before, and now "
                    f"one of {name!r}: a step must start the same children each time it runs."
                )
            self.started.append(found)
            return found
        if child_key in self._new_keys:
            raise InvalidChild(f"start_child(): the key {child_key!r} is used twice in this step.")
        parent = self.waits.task
        try:
            child = new_task(
                registry.get(name),
                body,
                meta=meta,
                priority=parent.priority if priority is None else priority,
                run_after=run_after,
            )
        except (PayloadError, ConfigurationError) as exc:
            raise InvalidChild(f"start_child(): {exc}") from exc
        child.parent_id, child.parent_step = parent.id, self.waits.step_name
        child.child_key = child_key
        child.detached, child.awaited, child.has_children = bool(detached), False, False
        self.new.append(child)
        self._new_keys.add(child_key)
        self.started.append(child)
        return child

    def wait_for_children(
        self,
        children: Iterable[Task] | None = None,
        *,
        timeout: float | timedelta | None = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        awaited = self._awaited(children)
        if not awaited:
            return []
        seconds = None if timeout is None else wait_seconds(timeout, "timeout")
        waits = self.waits
        position, record = waits._next(WaitKind.CHILDREN, "")
        if record is not None and record.outcome == WaitOutcome.TIMED_OUT:
            raise _timed_out(len(awaited), record.until)
        unwritten = {child.id for child in self.new}
        if not any(child.id in unwritten for child in awaited):
            rows = self._rows(awaited)
            if all(rows.get(child.id, _GONE)[0] in FINISHED for child in awaited):
                if record is None or not record.outcome:
                    waits._end(position, WaitKind.CHILDREN, "", WaitOutcome.FINISHED, record)
                return _results(awaited, rows, return_exceptions)
            if record is not None and record.due:
                waits._end(position, WaitKind.CHILDREN, "", WaitOutcome.TIMED_OUT, record)
                raise _timed_out(len(awaited), record.until)
        blocked = waits._blocked(position, WaitKind.CHILDREN, "", record, seconds=seconds)
        raise Suspend(replace(blocked, children=tuple(child.id for child in awaited)))

    def map(
        self, workflow: str | Workflow, bodies: Iterable[Any], *, keys: Sequence[str] | None = None
    ) -> list[Any]:
        bodies = list(bodies)
        if keys is not None:
            keys = list(keys)
            if len(keys) != len(bodies):
                raise InvalidChild(
                    f"map(): {len(keys)} keys for {len(bodies)} bodies; give one key per body."
                )
        children = [
            self.start_child(workflow, body, key=None if keys is None else keys[index])
            for index, body in enumerate(bodies)
        ]
        return self.wait_for_children(children)

    # -- written with the step's next commit -------------------------------------------

    @property
    def has_effects(self) -> bool:
        return bool(self.new)

    def write(self) -> None:
        """Write the children started since the last commit; announced when it commits."""
        if not self.new:
            return
        database, parent = self.waits.database, self.waits.task
        tasks = Task.objects.using(database)
        # The parent's row first. On MySQL it is written even when it says so already:
        # each child's insert holds a shared lock on it (the foreign key), which the
        # parent's own update would then raise to exclusive, deadlocking with a
        # heartbeat queued for the row in between.
        if parent.has_children is not True or dialect.foreign_keys_share_lock(
            connections[database]
        ):
            tasks.filter(id=parent.id).update(has_children=True)
        tasks.bulk_create(self.new, batch_size=_CHUNK)
        due = [child for child in self.new if not isinstance(child.run_after, datetime)]
        later = [child for child in self.new if isinstance(child.run_after, datetime)]
        transitions.tasks_due.send(sender=Task, tasks=due)
        transitions.tasks_due.send(sender=Task, tasks=later, scheduled=True)
        for child in self.new:
            signals.send_on_commit(signals.task_submitted, Task, database, task=child)

    def committed(self) -> None:
        """The children written are committed: a replay finds them; the parent has them."""
        if self.new:
            self.waits.task.has_children = True
            existing = self._existing_children()
            existing.update({str(child.child_key): child for child in self.new})
        self.new, self._new_keys = [], set()

    def await_children(self, blocked: Blocked) -> int:
        """In the parent's wait, before its row moves: mark ``blocked``'s children awaited.

        Returns how many have not finished. Marking them locks their rows: a child
        ending now has either committed (and is counted finished) or will count
        itself down once this commits. Children an earlier wait awaited, and this one
        does not, are unmarked: they no longer count for the parent.
        """
        tasks = Task.objects.using(self.waits.database)
        awaited = set(blocked.children)
        marked = tasks.filter(parent_id=self.waits.task.id, awaited=True)
        stale = [id_ for id_ in marked.values_list("id", flat=True) if id_ not in awaited]
        for chunk in _chunks(stale):
            tasks.filter(id__in=chunk).update(awaited=False)
        if self._exactly_the_step(awaited):
            groups: list[Any] = [self._step_rows(tasks)]
        else:
            groups = [tasks.filter(id__in=chunk) for chunk in _chunks(list(awaited))]
        left = 0
        for rows in groups:
            rows.update(awaited=True)
            left += rows.filter(status__in=UNFINISHED).count()
        return left

    # -- what they share -----------------------------------------------------------------

    def _workflow_name(self, workflow: str | Workflow) -> str:
        name = workflow.name if isinstance(workflow, Workflow) else workflow
        if not isinstance(name, str):
            raise InvalidChild(
                f"start_child() needs a workflow or its name, not {type(workflow).__name__}."
            )
        try:
            registry.get(name)
        except WorkflowNotFound as exc:
            raise InvalidChild(f"start_child(): {exc}") from exc
        return name

    def _key(self, key: Any) -> str:
        if key is None:
            return f"{_POSITIONAL}{self.calls}"
        try:
            check_name(key, "A child's key", CHILD_KEY_MAX_LENGTH)
        except PayloadError as exc:
            raise InvalidChild(f"start_child(): {exc}") from exc
        if key.startswith(_POSITIONAL):
            raise InvalidChild(
                f"start_child(): a key may not start with {_POSITIONAL!r} (the keys of "
                f"children started without one are their positions: {_POSITIONAL}1, ...)."
            )
        return str(key)

    def _existing_children(self) -> dict[str, Task]:
        """The children earlier runs of this step started, by key: read once."""
        if self._existing is None:
            self._existing = {}
            if self.waits.task.has_children is True:
                tasks = Task.objects.using(self.waits.database)
                for child in self._step_rows(tasks).only(
                    "id", "workflow", "status", "priority", "child_key", "parent", "parent_step"
                ):
                    self._existing[str(child.child_key)] = child
        return self._existing

    def _step_rows(self, tasks: Any) -> Any:
        return tasks.filter(parent_id=self.waits.task.id, parent_step=self.waits.step_name)

    def _awaited(self, children: Iterable[Task] | None) -> list[Task]:
        if children is None:
            return list({child.id: child for child in self.started}.values())
        if isinstance(children, Task):
            raise InvalidChild("wait_for_children() takes a list of children, not one task.")
        awaited = list(children)
        parent_id = self.waits.task.id
        for child in awaited:
            if not isinstance(child, Task) or child.parent_id != parent_id:
                raise InvalidChild(
                    "wait_for_children() waits for children of this task (as start_child() "
                    f"returns them), not {child!r}."
                )
        return list({child.id: child for child in awaited}.values())

    def _all_of_step(self, ids: Iterable[Any]) -> bool:
        """Whether every one of ``ids`` is a child this step started."""
        return {child.id for child in self.started}.issuperset(ids)

    def _exactly_the_step(self, ids: set[Any]) -> bool:
        """Whether ``ids`` are all the children of this step, and no others."""
        mine = {child.id for child in self.started}
        earlier = {child.id for child in (self._existing or {}).values()}
        return ids == mine and earlier <= mine

    def _rows(self, children: list[Task]) -> dict[Any, tuple[str, Any, str, str]]:
        """Each child's status, result, error and workflow, by id: one query (or a few)."""
        tasks = Task.objects.using(self.waits.database)
        fields = ("id", "status", "return_value", "error", "workflow")
        ids = [child.id for child in children]
        if self._all_of_step(ids):
            found = list(self._step_rows(tasks).values_list(*fields))
        else:
            found = []
            for chunk in _chunks(ids):
                found += tasks.filter(id__in=chunk).values_list(*fields)
        return {row[0]: row[1:] for row in found}


_GONE = ("", None, "", "")


def _chunks(ids: list[Any]) -> list[list[Any]]:
    return [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]


def _results(
    children: list[Task], rows: dict[Any, tuple[str, Any, str, str]], return_exceptions: bool
) -> list[Any]:
    """The children's results in order; the first failure raised unless it is returned."""
    results: list[Any] = []
    for child in children:
        status, value, error, workflow = rows.get(child.id, _GONE)
        if status == TaskStatus.COMPLETED:
            results.append(value)
            continue
        if not status:
            why = "no longer exists"
        elif status == TaskStatus.CANCELLED:
            why = "was cancelled"
        else:
            why = f"failed: {error}"
        failure = ChildFailed(
            f"Child task {child.id} ({workflow or child.workflow}, key {child.child_key!r}) {why}",
            child_id=child.id,
            workflow=workflow or child.workflow,
            status=status,
            error=error,
        )
        if not return_exceptions:
            raise failure
        results.append(failure)
    return results


def _timed_out(count: int, until: datetime | None) -> WaitTimeout:
    when = f" before {until.isoformat(timespec='seconds')}" if until is not None else ""
    return WaitTimeout(f"The {count} awaited children did not all finish{when}.")


def wakes_at_once(database: str, task: Task, left: int) -> bool:
    """After the parent's wait: make it due at once when no awaited child is left."""
    if left:
        return False
    tasks = Task.objects.using(database)
    return bool(transitions.WAKE.apply(tasks, where={"id": task.id, "children_left": 0}))
