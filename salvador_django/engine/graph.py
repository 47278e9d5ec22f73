"""The run of a graph task: its ready steps at the same time, a checkpoint after each.

The worker that claimed the task runs the steps whose dependencies are done in up to
``engine.parallelism`` threads (:mod:`.branches`). Each step has its own attempts,
retry policy and checkpoint, writing its ``StepRun`` and the task's merged state and
``progress`` (which steps are done). The checkpoints of one task are written one at a
time, under the run's lock, by the steps' own threads; those that wait for it share a
commit (:mod:`.graph_commits`). A crash replays only the running steps.

When a step fails for good, or the task is cancelled, paused, released or its lease is
lost, no new step starts; the running ones finish and checkpoint, then the task moves.
A step that waits stops its branch; the task waits when no branch runs.
"""

from __future__ import annotations

import copy
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from salvador_django import transitions
from salvador_django.definitions import Step, Workflow
from salvador_django.engine.blocked import Blocked, Suspend
from salvador_django.engine.graph_commits import Checkpoints
from salvador_django.engine.graph_end import end
from salvador_django.engine.graph_timeouts import abandon_overdue, until_overdue
from salvador_django.engine.outcome import (
    CheckpointFailed,
    Outcome,
    call_step,
    database_lost,
    reach,
)
from salvador_django.engine.waits import StepWaits
from salvador_django.engine.writes import GraphProgress, describe
from salvador_django.exceptions import LeaseLost, StepNotFound
from salvador_django.leases import Attempt, Lease
from salvador_django.models import Task
from salvador_django.queries import Checkpoint

if TYPE_CHECKING:
    from salvador_django.engine.runner import Engine

logger = logging.getLogger("salvador_django")

_MISSING = object()


@dataclass
class _Ended:
    """How one branch ended, handed from its thread to the run."""

    name: str
    how: str  # "done", "blocked", "error", "lost", "crash"
    attempt: Attempt | None = None
    written: Checkpoint | None = None
    blocked: Blocked | None = None
    error: BaseException | None = None


class GraphRun:
    """One claimed run of a graph task, from its ready steps until it stops."""

    def __init__(
        self,
        engine: Engine,
        task: Task,
        lease: Lease,
        workflow: Workflow,
        should_stop: Callable[[], bool],
    ) -> None:
        self.engine, self.task, self.lease, self.workflow = engine, task, lease, workflow
        self.should_stop = should_stop
        self.graph = workflow.graph
        progress = task.progress or {}
        self.done: list[str] = list(progress.get("done", []))
        self.skipped: list[str] = list(progress.get("skipped", []))
        self.failed: list[str] = list(progress.get("failed", []))
        self.attempts: dict[str, int] = dict(progress.get("attempts", {}))
        if self.failed and not task.error:  # requeued since: the failed steps run again
            self.failed, self.attempts = [], {}
        if not progress and task.step > 0:  # a straight-line task whose workflow became a graph
            self.done = [step.name for step in workflow.steps[: task.step]]
        if not self.done and task._outputs is None:
            task._outputs = {}  # nothing done yet: no step run to read them from
        self.errors: dict[str, str] = {}
        self.retry_at: dict[str, float] = {}  # monotonic time of a step's next attempt
        self.running: set[str] = set()
        self.attempts_running: dict[str, Attempt] = {}
        self.abandoned: set[int] = set()  # ids of attempts failed by their timeout
        self.blocked: dict[str, tuple[Attempt, Blocked]] = {}
        self.made: list[Attempt] = []  # every attempt of this run (their spans end with it)
        self.ended: queue.SimpleQueue[_Ended] = queue.SimpleQueue()
        #: Held while a checkpoint (or an atomic step with its own) is written: one at a time.
        self.lock = threading.RLock()
        #: Held while this run's own lists (done, abandoned...) are read or changed, briefly:
        #: the run starts steps while a checkpoint or an atomic step holds ``lock``.
        self.books = threading.Lock()
        self.checkpoints = Checkpoints(self)
        self.inline_since = time.monotonic()  # when this thread last used its connection
        self.stop: str | None = None  # why no new step starts: "lost", "cancel", "pause"...
        self.crash: BaseException | None = None

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Run ready steps until none runs; then complete, fail, wait, retry or stop."""
        missing = [name for name in self._expected() if self.workflow.step_named(name) is None]
        if missing:
            raise StepNotFound(
                f"Task {self.task.id} is at step {missing[0]!r}, which workflow "
                f"{self.workflow.name!r} no longer has (steps: "
                f"{', '.join(s.name for s in self.workflow.steps)})."
            )
        while True:
            if self.stop is None:
                self._start_ready()
            if not self.running:
                break
            try:
                self._take(self.ended.get(timeout=until_overdue(self)))
            except queue.Empty:
                abandon_overdue(self)
        return end(self)

    def _expected(self) -> list[str]:
        """The step names the task's row says it will run next (its ``step_name``)."""
        name = self.task.step_name
        return [name] if name and name not in self.done else []

    def _start_ready(self) -> None:
        """Start ready steps, as many as there are threads; skip those whose ``when`` is false."""
        while self.stop is None:
            if self.should_stop():
                self.stop = "release"
                return
            if not self.engine.still_held(self.lease):
                self.stop = "lost"
                return
            now = time.monotonic()
            with self.books:
                ready = [
                    node
                    for node in self.graph.ready(self.done, (), self.running)
                    if node.name not in self.blocked
                    and node.name not in self.failed
                    and self.retry_at.get(node.name, 0) <= now
                ]
                completed = self._completed()
            if not ready or len(self.running) >= self.engine.parallelism:
                return
            node = ready[0]
            step = self.workflow.step_named(node.name)
            assert step is not None
            number = self.attempts.get(node.name, 0) + 1
            if self.graph.none_ran(node, completed):
                self._skip(step)
                continue
            if step.when is not None and not self._evaluate(step, number):
                continue
            self.running.add(step.name)
            self.retry_at.pop(step.name, None)
            attempt = self.attempts_running[step.name] = self._attempt(step, number)
            alone = len(self.running) == 1 and (len(ready) == 1 or self.engine.parallelism == 1)
            if alone and not (step.timeout and self.engine.watch_timeouts):
                idle = time.monotonic() - self.inline_since > 1.0  # its connection sat idle
                self._branch(attempt, check=idle)  # alone: in this thread, no hand-over
                self.inline_since = time.monotonic()
            else:  # (a step with a timeout in a thread of its own: this one watches it)
                self.engine.branches().run(lambda a=attempt: self._branch(a))  # type: ignore[misc]

    def _evaluate(self, step: Step, number: int) -> bool:
        """``step.when(task)``; a condition that raises fails the attempt. False: skipped."""
        try:
            assert step.when is not None
            if step.when(self._view(step, number)):
                return True
        except Exception as exc:
            self._failed(self._attempt(step, number), exc)
            return False
        self._skip(step)
        return False

    def _take(self, ended: _Ended) -> None:
        """Learn how a branch ended."""
        self.running.discard(ended.name)
        self.attempts_running.pop(ended.name, None)
        if ended.how == "done":
            if ended.written == Checkpoint.CANCEL_REQUESTED:
                self.stop = "cancel"
            elif ended.written == Checkpoint.PAUSE_REQUESTED and self.stop is None:
                self.stop = "pause"
        elif ended.how == "blocked":
            assert ended.attempt is not None
            assert ended.blocked is not None
            self.blocked[ended.name] = (ended.attempt, ended.blocked)
        elif ended.how == "error":
            assert ended.attempt is not None
            assert isinstance(ended.error, Exception)
            self._failed(ended.attempt, ended.error)
        elif ended.how == "lost":
            self.stop = "lost"
        else:
            self.stop = "crash"
            error = ended.error
            if not isinstance(error, CheckpointFailed):  # the database went away under it
                error = CheckpointFailed(f"the database went away under the step: {error}")
            self.crash = error

    # -- one branch -------------------------------------------------------------------------

    def _view(self, step: Step, number: int) -> Task:
        """The task as ``step`` sees it: its own copy of the state, the shared outputs."""
        view = copy.copy(self.task)
        view.state = copy.deepcopy(self.task.state)
        view.step_name, view.attempt = step.name, number
        view._outputs = self.task.outputs
        return view

    def _attempt(self, step: Step, number: int) -> Attempt:
        view = self._view(step, number)
        index = self.workflow.index_of(step.name)
        assert index is not None
        attempt = Attempt(view, self.lease, self.workflow, index, step, number, timezone.now())
        self.made.append(attempt)
        attempt.waits = view._step_waits = StepWaits(self.engine.database, view, step.name)
        if step.timeout:
            attempt.deadline = view.deadline = attempt.began + step.timeout
        return attempt

    def _branch(self, attempt: Attempt, check: bool = False) -> None:
        """Run ``attempt`` and checkpoint it; ``check``: see that the connection answers."""
        step, worker = attempt.step, self.engine.worker_name
        before = copy.deepcopy(attempt.task.state)
        try:
            if check and not step.atomic:
                reach(self.engine.database)
            if step.atomic:  # its transaction and its checkpoint's are one: taken in turn
                with self.lock:
                    reach(self.engine.database)
                    # Renewed out of the step's transaction (SQLite: held write lock).
                    if not self.engine.still_held(self.lease):
                        raise LeaseLost
                    with self.checkpoints.transaction():
                        written = self.checkpoint(attempt, call_step(attempt, worker), before)
            else:
                written = self.checkpoints.write(attempt, call_step(attempt, worker), before)
            ended = _Ended(step.name, "done", attempt, written=written)
        except Suspend as suspended:
            ended = _Ended(step.name, "blocked", attempt, blocked=suspended.blocked)
        except LeaseLost:
            ended = _Ended(step.name, "lost")
        except CheckpointFailed as exc:
            ended = _Ended(step.name, "crash", error=exc)
        except Exception as exc:
            # Then not the step's fault: the database went away, or its commit is in doubt.
            crash = self.checkpoints.in_doubt or database_lost(exc, self.engine.database)
            ended = _Ended(step.name, "crash" if crash else "error", attempt, error=exc)
        finally:
            attempt.task._step_waits = None
        with self.books:
            if id(attempt) in self.abandoned:
                return  # timed out: already failed, whatever it did since
        self.ended.put(ended)

    def checkpoint(self, attempt: Attempt, output: Any, before: dict[str, Any]) -> Checkpoint:
        """Merge the step's state into the task's and write its checkpoint (under the lock)."""
        if id(attempt) in self.abandoned:
            raise LeaseLost  # timed out meanwhile: its attempt was failed, nothing is written
        self.checkpoints.check_writable()
        view, name = attempt.task, attempt.step.name
        merged = dict(self.task.state)
        for key in before.keys() - view.state.keys():
            merged.pop(key, None)
        for key, value in view.state.items():
            if before.get(key, _MISSING) != value:
                merged[key] = value
        view.state = merged
        view.has_children = view.has_children or self.task.has_children
        written = self.engine.writes.checkpoint(
            attempt, output, self._next_name(name), graph=self._progress_with(name, output)
        )
        self._record_done(name, view.state, output=output, skipped=False)
        self.task.has_children = view.has_children
        return written

    def _next_name(self, name: str) -> str:
        """The task's ``step_name`` once ``name`` is done: its first step not done, or ``""``."""
        done = {*self.done, name}
        return next((n for n in self.graph.names if n not in done), "")

    def _progress_with(self, name: str, output: Any, skipped: bool = False) -> GraphProgress:
        done = [*self.done, name]
        progress = self._progress(done, [*self.skipped, name] if skipped else self.skipped)
        last = self.graph.names[-1]
        complete = len(set(done)) == len(self.graph.names)
        result = None
        if complete and last not in progress["skipped"]:
            result = output if name == last else self.task.outputs.get(last)
        error = self._error() if self.failed else ""
        return GraphProgress(step=len(done), progress=progress, result=result, error=error)

    def _progress(self, done: list[str], skipped: list[str]) -> dict[str, Any]:
        progress: dict[str, Any] = {"done": done, "skipped": skipped}
        if self.attempts:
            progress["attempts"] = self.attempts
        if self.failed:
            progress["failed"] = self.failed
        return progress

    def _record_done(self, name: str, state: Any, *, output: Any, skipped: bool) -> None:
        """After a checkpoint: the step is done in this run's memory too."""
        with self.books:
            self.done.append(name)
            if skipped:
                self.skipped.append(name)
        if not skipped:  # as a resumed run reads it: the JSON the checkpoint stored
            self.task.outputs[name] = json.loads(json.dumps(output))
        self.task.state = state
        self.task.step, self.task.step_name = len(self.done), self._next_name(name)

    def _skip(self, step: Step) -> None:
        """Record ``step`` as skipped: its condition was false, or none of its ``after_any`` ran."""
        attempt = self._attempt(step, 0)
        with self.lock:
            try:
                self.checkpoints.check_writable()
                written = self.engine.writes.checkpoint(
                    attempt,
                    None,
                    self._next_name(step.name),
                    graph=self._progress_with(step.name, None, skipped=True),
                    skipped=True,
                )
            except LeaseLost:
                self.stop = "lost"
                return
            except CheckpointFailed as exc:
                self.stop, self.crash = "crash", exc
                return
            self._record_done(step.name, self.task.state, output=None, skipped=True)
        logger.info("salvador: task %s step %r skipped", self.task.id, step.name)
        if written == Checkpoint.CANCEL_REQUESTED:
            self.stop = "cancel"
        elif written == Checkpoint.PAUSE_REQUESTED:
            self.stop = self.stop or "pause"

    def _completed(self) -> list[str]:
        skipped = set(self.skipped)
        return [name for name in self.done if name not in skipped]

    # -- failures ---------------------------------------------------------------------------

    def _failed(self, attempt: Attempt, exc: Exception) -> None:
        """An attempt failed: its step is retried later, or has failed for good."""
        step, number = attempt.step, attempt.number
        retry = self.workflow.retry_for(step)
        again = retry.should_retry(exc, number) and not self.engine.writes.cancel_requested(
            self.task
        )
        delay = retry.delay(number) if again else 0.0
        error = describe(exc)
        with self.lock:
            self.attempts = {**self.attempts, step.name: number}
            if not again:
                self.failed = [*self.failed, step.name]
                self.errors[step.name] = error
            if not self._record_failure(attempt, exc, delay if again else None):
                self.stop = "lost"
                return
        if again:
            self.retry_at[step.name] = time.monotonic() + delay
            logger.info(
                "salvador: task %s (%s) step %r attempt %d failed (%s); retry in %.1fs",
                self.task.id, self.task.workflow, step.name, number, error, delay,
            )  # fmt: skip
        else:
            self.stop = self.stop or "fail"

    def _record_failure(self, attempt: Attempt, exc: Exception, delay: float | None) -> bool:
        """Write the failed attempt's ``StepRun`` and the task's progress: one fenced commit."""
        return self.engine.writes.record_failure(
            self.task,
            self.lease,
            transitions.CHECKPOINT,
            exc,
            attempt,
            index=attempt.index,
            next_attempt_at=None if delay is None else timezone.now() + timedelta(seconds=delay),
            step=len(self.done),
            step_name=self.failed[0] if self.failed else self.task.step_name,
            state=self.task.state,
            progress=self._progress(self.done, self.skipped),
            error=self._error() if self.failed else "",
        )

    def _error(self) -> str:
        """The task's error: every step that failed for good, with its error."""
        if not self.errors:
            return self.task.error or f"Step {self.failed[0]!r} failed."
        return "; ".join(f"Step {name!r} failed: {error}" for name, error in self.errors.items())
