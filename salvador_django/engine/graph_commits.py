"""The checkpoints of a graph task's parallel steps: those that end together share a commit.

Each step still has its checkpoint (its ``StepRun``, the merged state, the task's
progress), written in the order the steps ended. A step that ends while another
step's checkpoint is being written waits for the run's lock; the thread that takes
it next writes every checkpoint waiting by then, in one transaction. So eight steps
that end at once cost a few commits, not eight. If that transaction fails, none of
its checkpoints is written, and each of its steps learns why.

A transaction of checkpoints (a batch, or an atomic step with its own) changes the
run's memory as it goes: each checkpoint's progress holds those before it. If it
fails, that memory is put back, so that no later checkpoint claims a step that was
not written. If its commit itself fails, nobody knows whether it was written: the
run writes nothing more (its lease expires, and the next run reads what was).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction

from salvador_django.engine.outcome import CheckpointFailed
from salvador_django.engine.text import encode
from salvador_django.exceptions import NotSerialisable
from salvador_django.leases import Attempt
from salvador_django.queries import Checkpoint

if TYPE_CHECKING:
    from salvador_django.engine.graph import GraphRun


@dataclass
class _Waiting:
    """A step's checkpoint, handed over to be written."""

    attempt: Attempt
    output: Any
    before: dict[str, Any]
    written: Checkpoint | None = None
    error: BaseException | None = None
    done: bool = False


class Checkpoints:
    """Writes the checkpoints of one graph run's steps, several in a commit when they can."""

    def __init__(self, run: GraphRun) -> None:
        self.run = run
        self._waiting: list[_Waiting] = []
        self._guard = threading.Lock()
        #: A commit of this run failed: whether it was written is unknown.
        self.in_doubt = False

    def check_writable(self) -> None:
        """Raise ``CheckpointFailed`` if an earlier commit of this run is in doubt."""
        if self.in_doubt:
            raise CheckpointFailed(
                "an earlier commit of this run failed: whether it was written is unknown"
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction of checkpoints (under the run's lock); see the module's doc."""
        saved = _progress_now(self.run)
        body_ended = False
        try:
            with transaction.atomic(using=self.run.engine.database):
                yield
                body_ended = True
        except BaseException:
            _progress_back(self.run, saved)
            if body_ended:  # the commit itself failed
                self.in_doubt = True
            raise

    def write(self, attempt: Attempt, output: Any, before: dict[str, Any]) -> Checkpoint:
        """Write the checkpoint of ``attempt`` (alone, or with others that ended meanwhile).

        Raises what writing it raised: ``LeaseLost``, ``CheckpointFailed``,
        ``NotSerialisable``.
        """
        entry = _Waiting(attempt, output, before)
        with self._guard:
            self._waiting.append(entry)
        with self.run.lock:
            if not entry.done:
                with self._guard:
                    batch, self._waiting = self._waiting, []
                self._write(batch)
        if entry.error is not None:
            raise entry.error
        assert entry.written is not None
        return entry.written

    def _write(self, batch: list[_Waiting]) -> None:
        storable = []
        depth = self.run.engine.writes.json_depth
        for entry in batch:  # a value that is not JSON fails its own step, not the others
            name = entry.attempt.step.name
            try:
                encode(entry.output, f"the return value of step {name!r}", depth)
                encode(entry.attempt.task.state, f"task.state after step {name!r}", depth)
            except NotSerialisable as exc:
                entry.error, entry.done = exc, True
                continue
            storable.append(entry)
        if len(storable) == 1:
            entry = storable[0]
            try:
                entry.written = self.run.checkpoint(entry.attempt, entry.output, entry.before)
            except CheckpointFailed as exc:  # tried again while the lease held: still in doubt
                self.in_doubt, entry.error = True, exc
            except Exception as exc:
                entry.error = exc
            entry.done = True
            return
        try:
            with self.transaction():
                for entry in storable:
                    entry.written = self.run.checkpoint(entry.attempt, entry.output, entry.before)
        except Exception as exc:
            error = CheckpointFailed(str(exc)) if isinstance(exc, DatabaseError) else exc
            for entry in storable:
                entry.error = error
        for entry in storable:
            entry.done = True


def _progress_now(run: GraphRun) -> tuple[Any, ...]:
    """What a checkpoint changes in the run's memory, to put back if its commit fails."""
    task = run.task
    outputs = None if task._outputs is None else dict(task._outputs)
    return (list(run.done), list(run.skipped), task.state, outputs, task.step,
            task.step_name, task.has_children)  # fmt: skip


def _progress_back(run: GraphRun, saved: tuple[Any, ...]) -> None:
    task = run.task
    run.done, run.skipped, task.state, task._outputs, task.step = saved[:5]
    task.step_name, task.has_children = saved[5:]
