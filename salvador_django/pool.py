"""``runworkflows --pool processes``: worker processes that a supervisor can kill.

A thread running a hung step cannot be stopped, only abandoned. In this mode each
slot is a child process running a one-thread :class:`~salvador_django.worker.Worker`;
the child tells the supervisor (this process) the deadline of each step attempt
that has a ``timeout``. When an attempt outlives its deadline, the supervisor kills
the child (SIGKILL), records the attempt as failed with ``StepTimeout`` (the retry
policy applies), and starts a new child in the slot. A child that dies for any
other reason is replaced as well; its task's lease expires and the step is replayed.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from django.db import DatabaseError, connections
from django.utils.dateparse import parse_datetime

from salvador_django.conf import get_settings
from salvador_django.engine import Engine, Outcome
from salvador_django.engine.text import loggable, loggable_traceback
from salvador_django.exceptions import QueueUnavailable, WorkflowNotFound
from salvador_django.leases import Attempt, Lease, worker_name
from salvador_django.models import Task, WorkerKind
from salvador_django.preflight import warn_of_unregistered_workflows
from salvador_django.queues import Entry, announce, get_queue, reset_queues
from salvador_django.registry import registry
from salvador_django.worker import (
    TIMEOUT_GRACE_SECONDS,
    Worker,
    WorkerOptions,
)

logger = logging.getLogger("salvador_django")

# Room for one attempt's note, as JSON: only bounded fields (ids, the claim token,
# numbers, an ISO time), well under 1,000 bytes. Not the step's name (200 characters
# of up to 4 bytes, or 12 as a JSON escape): the supervisor finds the step by index.
_NOTE_BYTES = 2048
_CHECK_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_GAVE_UP = 75  # a burst child's exit code when its worker gave up (EX_TEMPFAIL)


class Slot:
    """One child process and the note through which it reports its current attempt."""

    def __init__(self, number: int, context: Any) -> None:
        self.number = number
        self.note: Any = context.Array("c", _NOTE_BYTES)
        self.process: BaseProcess | None = None

    def attempt(self) -> dict[str, Any] | None:
        raw = bytes(self.note.value).decode()
        return json.loads(raw) if raw else None


class ProcessPool:
    """Runs ``options.concurrency`` worker processes until stopped."""

    def __init__(self, options: WorkerOptions, queue_name: str | None = None) -> None:
        self.options = options
        self.queue_name = queue_name
        self.context = multiprocessing.get_context("fork")
        self.slots = [Slot(n, self.context) for n in range(options.concurrency)]
        self._stop = False
        #: Why a burst gave up before it was done (a child's database or queue stayed down).
        self.gave_up: str | None = None
        #: Called with the pid of each child that exited (the metrics' bookkeeping).
        self.on_child_exit: Callable[[int], None] | None = None
        self.engine = Engine(
            database=get_settings().DATABASE,
            worker_name=worker_name(),
        )

    def stop(self) -> None:
        """Ask every child to finish its running step and exit."""
        self._stop = True
        self._ask_children_to_stop()

    def _ask_children_to_stop(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive() and slot.process.pid:
                os.kill(slot.process.pid, signal.SIGTERM)

    @property
    def stopping(self) -> bool:
        return self._stop

    def connections_needed(self) -> tuple[int, str]:
        """The database connections the pool may hold at once, and what they are."""
        # Each child: its thread, maintenance, timers (none in a burst), the listener.
        timers = 0 if self.options.burst else 1
        per_child = 2 + timers + get_queue(self.queue_name).connections_held()
        children = self.options.concurrency
        how = f"{children} process(es) of {per_child}, 1 for the supervisor"
        return children * per_child + 1, how

    def run(self) -> bool:
        """Supervise the children until stopped (or, in burst mode, until all exit)."""
        if self.options.warn_of_unregistered:
            warn_of_unregistered_workflows(get_settings().DATABASE)
        for slot in self.slots:
            self._start(slot)
        while not self._stop:
            for slot in self.slots:
                try:
                    self._supervise(slot)
                except Exception as exc:  # no error ends supervision: log it, go on
                    logger.error(
                        "salvador: supervising pool slot %d failed: %s",
                        slot.number,
                        loggable_traceback(exc),
                    )
            if self.options.burst and not any(self._alive(s) for s in self.slots):
                break
            time.sleep(_CHECK_SECONDS)
        return self._join()

    def _alive(self, slot: Slot) -> bool:
        return slot.process is not None and slot.process.is_alive()

    def _start(self, slot: Slot) -> None:
        if self._stop:  # a slot that emptied as the pool was told to stop stays empty
            slot.process = None
            return
        slot.note.value = b""
        connections.close_all()  # a child must not share the parent's connections
        reset_queues()
        process = self.context.Process(
            target=_child_main,
            # The supervisor's pid from here: a child that asked os.getppid() itself
            # would, if the supervisor died before it asked, watch its new parent.
            args=(slot.note, self.options, self.queue_name, os.getpid()),
            name=f"salvador-pool-{slot.number}",
        )
        process.start()
        slot.process = process
        logger.info("salvador: pool slot %d runs process %s", slot.number, process.pid)

    def _supervise(self, slot: Slot) -> None:
        process = slot.process
        if process is None:
            return
        if not process.is_alive():
            self._exited(process)
            if self.options.burst and process.exitcode == 0:
                slot.process = None
                return
            if self.options.burst and process.exitcode == _GAVE_UP:
                slot.process = None
                self.gave_up = self.gave_up or (
                    f"pool process {process.pid} gave up: the database or the queue stayed "
                    f"unreachable for {self.options.give_up_after:g}s (see its log)"
                )
                self.stop()
                return
            logger.error(
                "salvador: pool process %s exited (code %s); starting another",
                process.pid,
                process.exitcode,
            )
            self._start(slot)
            return
        attempt = slot.attempt()
        if attempt is None or time.monotonic() < attempt["deadline"] + TIMEOUT_GRACE_SECONDS:
            return
        process.kill()
        process.join(10)
        self._exited(process)
        logger.error(
            "salvador: task %s step %s hung past its timeout of %ss; killed process %s",
            attempt["task"],
            self._step_name(attempt),
            attempt["timeout"],
            process.pid,
        )
        try:
            self._time_out(attempt)
        except (DatabaseError, QueueUnavailable) as exc:
            # The task keeps its claim until the lease expires; the reaper returns it.
            logger.error("salvador: could not record the timeout (%s)", loggable(str(exc)))
            connections.close_all()
        self._start(slot)

    def _step_name(self, note: dict[str, Any]) -> str:
        """The step of the attempt ``note`` describes, for the log: not in the note."""
        try:
            task = Task.objects.using(get_settings().DATABASE).get(id=note["task"])
            return repr(registry.get(task.workflow).steps[note["index"]].name)
        except (DatabaseError, Task.DoesNotExist, WorkflowNotFound, IndexError):
            return f"at index {note['index']}"

    def _time_out(self, note: dict[str, Any]) -> None:
        database = get_settings().DATABASE
        task = Task.objects.using(database).filter(id=note["task"]).first()
        if task is None:
            return
        workflow = registry.get(task.workflow)
        step = workflow.steps[note["index"]]
        task.attempt = note["attempt"]
        task.step, task.step_name = note["index"], step.name
        started = parse_datetime(note["started"])
        assert started is not None
        lease = Lease(task.id, note["token"])
        attempt = Attempt(task, lease, workflow, note["index"], step, note["attempt"], started)
        attempt.deadline = note["deadline"]
        outcome = self.engine.time_out(lease, attempt, fate="its process was killed")
        if outcome == Outcome.RETRY:
            announce([Entry.of(task, scheduled=True)], get_queue(self.queue_name))

    def _join(self) -> bool:
        # Again: a child started while stop() ran (it runs in a signal handler, between
        # any two lines of the loop) was not there to be asked.
        self._ask_children_to_stop()
        deadline = time.monotonic() + self.options.grace_period
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
        stuck = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for process in stuck:
            logger.warning(
                "salvador: pool process %s still running after the grace period; killing it",
                process.pid,
            )
            process.kill()
            process.join(10)
        for slot in self.slots:
            if slot.process is not None and not slot.process.is_alive():
                self._exited(slot.process)
        return not stuck

    def _exited(self, process: BaseProcess) -> None:
        if self.on_child_exit is not None and process.pid is not None:
            self.on_child_exit(process.pid)


def _child_main(note: Any, options: WorkerOptions, queue_name: str | None, supervisor: int) -> None:
    """A pool child: one worker thread, reporting its attempts through ``note``.

    It stops when ``supervisor`` (the pid of the process that started it) is gone.
    """
    worker = Worker(
        replace(
            options,
            concurrency=1,
            parallel_steps=options.parallel_steps or options.concurrency,
            abandon_hung_steps=False,
            warn_of_unregistered=False,
            kind=WorkerKind.POOL_CHILD,
        ),
        queue=get_queue(queue_name),
    )

    def publish(lease: Lease, attempt: Attempt | None) -> None:
        if attempt is None:
            note.value = b""
            return
        description = {
            "task": str(attempt.task.id),
            "token": lease.token,
            "index": attempt.index,
            "timeout": attempt.step.timeout,
            "attempt": attempt.number,
            "started": attempt.started.isoformat(),
            "deadline": attempt.deadline,
        }
        encoded = json.dumps(description).encode()
        if len(encoded) >= _NOTE_BYTES:  # never cut: the supervisor could not read it
            logger.error(
                "salvador: task %s: the note of its attempt (%d bytes) does not fit the "
                "pool's channel; its timeout will not be enforced",
                attempt.task.id,
                len(encoded),
            )
            note.value = b""
            return
        note.value = encoded

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; it sends SIGTERM
    worker.engine.on_attempt = publish
    _ask_for_sigterm_when_parent_dies()
    threading.Thread(
        target=_stop_when_orphaned, args=(supervisor, worker), name="pool-watch", daemon=True
    ).start()
    worker.run()
    connections.close_all()
    if worker.gave_up:
        sys.exit(_GAVE_UP)


def _ask_for_sigterm_when_parent_dies() -> None:
    """On Linux, have the kernel send this process SIGTERM when its parent dies.

    The watch thread below would notice too, within half a second; this is at once.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        logger.warning("salvador: prctl(PR_SET_PDEATHSIG) failed (errno %s)", ctypes.get_errno())


def _stop_when_orphaned(supervisor: int, worker: Worker) -> None:
    """Stop the child's worker if its supervisor dies (say, SIGKILL): no orphan runs on."""
    while os.getppid() == supervisor and not worker.stopping:
        time.sleep(0.5)
    if not worker.stopping:
        logger.error("salvador: pool supervisor %s is gone; stopping", supervisor)
        worker.stop()
