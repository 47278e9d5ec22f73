"""The waiting workflow's load: its tasks, their signals, and pauses, during the faults.

``WaitingLoad`` plays a plan drawn from the run's seed. It submits the
``chaos-waits`` tasks at a steady pace and sends each task's four signals, each on
a cue of its own:

- ``at once``: just after the task is submitted, before its step waits;
- ``at random``: at a random moment after submission;
- ``waiting``: once the task is seen waiting for that signal (a short random
  moment later), so while it waits;
- ``timed out``: once the task's wait for that name timed out (``second`` only).

A share of the signals is sent again a little later with the same idempotency key
(sometimes after the task finished), and a share of the tasks is paused for a
moment (``Task.pause()``, then ``resume()``). Database outages are waited out: each
call is retried, and a retried send carries the same key.

The plan is played by a few threads (``Timeline``, a task's actions all in one), so
that a call waiting for a lock does not hold the others up; ``Cues`` watches the
tasks and hands each cued signal to its task's thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

from benchmarks.faults.waiting_checks import SIGNALS, WORKFLOW, Pause, Sent
from benchmarks.faults.waiting_records import canonical

logger = logging.getLogger("chaos")
T = TypeVar("T")

#: How each of a task's signals is cued, with the odds of each cue.
CUES: dict[str, dict[str, float]] = {
    "first": {"at once": 0.25, "at random": 0.25, "waiting": 0.5},
    "second": {"at random": 0.4, "waiting": 0.3, "timed out": 0.3},
    "item": {"at random": 0.5, "waiting": 0.5},
}
#: Seconds after submission of a signal sent at random; after its cue, of one cued.
AT_RANDOM, AFTER_CUE = (0.0, 6.0), (0.0, 0.5)
#: Seconds of each sleep, and of the timeout of the wait for "second".
SLEEP, TIMEOUT = (0.2, 1.5), (0.5, 2.5)
#: Shares of signals sent twice (the second send up to AGAIN_WITHIN s later) and of
#: tasks paused (for PAUSE_FOR s, within PAUSE_WITHIN s of submission).
AGAIN, PAUSED = 0.3, 0.25
AGAIN_WITHIN, PAUSE_WITHIN, PAUSE_FOR = 4.0, 6.0, (0.3, 2.5)
#: Threads that play the plan; how often ``Cues`` looks at the tasks.
LANES, CUE_EVERY = 4, 0.25
#: Seconds after which a cue not seen is given up, and its signal sent anyway.
CUE_PATIENCE = 120.0
#: How many times a resume refused (the pause not taken yet) is tried, 0.5 s apart.
RESUME_TRIES = 120
#: The last of a task's planned moments comes at most this long after its submission.
TAIL = max(AT_RANDOM[1], PAUSE_WITHIN + PAUSE_FOR[1])


@dataclass(frozen=True)
class Outgoing:
    """A signal to send to the task submitted ``number``th, on ``cue``."""

    number: int
    name: str
    key: str
    payload: dict[str, Any]
    cue: str
    delay: float  # after submission (at random), or after the cue was seen
    again: float | None = None  # sent again this long after, with the same key
    is_again: bool = False


class Timeline(threading.Thread):
    """Runs actions one after another, each at its moment (seconds after ``began``),
    until it is closed and has none left."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.began = time.monotonic()
        self.behind = 0.0  # the longest an action started after its moment
        self.errors: list[str] = []
        self._actions: list[tuple[float, int, Callable[[float], None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False

    def now(self) -> float:
        return time.monotonic() - self.began

    def at(self, moment: float, action: Callable[[float], None]) -> None:
        """Run ``action(now)`` at ``moment`` (``now``: when it runs, on the same scale)."""
        with self._changed:
            heapq.heappush(self._actions, (moment, next(self._order), action))
            self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    def run(self) -> None:
        while (next_action := self._next()) is not None:
            moment, action = next_action
            now = self.now()
            self.behind = max(self.behind, now - moment)
            try:
                action(now)
            except Exception as exc:  # recorded: the run fails, and goes on
                logger.exception("chaos: the waiting load failed")
                self.errors.append(repr(exc))

    def _next(self) -> tuple[float, Callable[[float], None]] | None:
        with self._changed:
            while True:
                if not self._actions:
                    if self._closed:
                        return None
                    self._changed.wait()
                    continue
                moment = self._actions[0][0]
                if moment <= self.now():
                    _, _, action = heapq.heappop(self._actions)
                    return moment, action
                self._changed.wait(moment - self.now())


class WaitingLoad:
    """Plays the waiting workflow's plan; records what it sent and paused."""

    def __init__(self, rng: random.Random, tasks: int, duration: float) -> None:
        self.rng = rng
        self.ids: dict[int, str] = {}
        self.sent: list[Sent] = []
        self.pauses: list[Pause] = []
        self.outcomes: Counter[str] = Counter()  # of cues, pauses and resumes
        self._lock = threading.Lock()
        self._lanes = [Timeline(f"chaos-waits-{n}") for n in range(LANES)]
        self._cues = Cues(self)
        self._plan(tasks, duration)

    def start(self) -> None:
        began = time.monotonic()
        for lane in self._lanes:
            lane.began = began
            lane.start()
        self._cues.start()

    def join(self) -> None:
        """Wait until every planned action, cued or not, has run."""
        self._cues.join()
        for lane in self._lanes:
            lane.close()
        for lane in self._lanes:
            lane.join()

    @property
    def errors(self) -> list[str]:
        return [error for lane in self._lanes for error in lane.errors] + self._cues.errors

    @property
    def behind(self) -> float:
        """The longest any action started after its moment, in seconds."""
        return max((lane.behind for lane in self._lanes), default=0.0)

    def count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def lane(self, number: int) -> Timeline:
        return self._lanes[number % LANES]

    def _plan(self, tasks: int, duration: float) -> None:
        rng = self.rng
        for number in range(tasks):
            submitted = number * duration / tasks
            body = {
                "sleeps": [round(rng.uniform(*SLEEP), 3) for _ in range(2)],
                "timeout": round(rng.uniform(*TIMEOUT), 3),
            }
            self.lane(number).at(submitted, partial(self._submit, number, body))
            for index, name in enumerate(SIGNALS):
                odds = CUES[name]
                cue = rng.choices(list(odds), weights=list(odds.values()))[0]
                delay = rng.uniform(*(AT_RANDOM if cue == "at random" else AFTER_CUE))
                signal = Outgoing(
                    number, name, f"w{number}-{index}",
                    {"task": number, "signal": index, "nonce": rng.getrandbits(32)}, cue,
                    0.0 if cue == "at once" else delay,
                    rng.uniform(0, AGAIN_WITHIN) if rng.random() < AGAIN else None,
                )  # fmt: skip
                if cue in ("at once", "at random"):
                    self.lane(number).at(submitted + signal.delay, partial(self.send, signal))
                else:
                    self._cues.add(signal)
            if rng.random() < PAUSED:
                pause_at = submitted + rng.uniform(0, PAUSE_WITHIN)
                length = rng.uniform(*PAUSE_FOR)
                self.lane(number).at(pause_at, partial(self._pause, number, length))

    def _submit(self, number: int, body: dict[str, Any], now: float) -> None:
        from salvador_django import submit

        task = retrying(lambda: submit(WORKFLOW, body, idempotency_key=f"waits-{number}"))
        self.ids[number] = str(task.id)

    def send(self, signal: Outgoing, now: float) -> None:
        from salvador_django import send_signal
        from salvador_django.exceptions import InvalidTransition

        task_id = self.ids[signal.number]
        outcome, found = "sent", None
        try:
            sent = retrying(
                lambda: send_signal(
                    task_id, signal.name, signal.payload, idempotency_key=signal.key
                )
            )
            found = sent.id
        except InvalidTransition:
            outcome = "refused"
        except Exception as exc:
            outcome = repr(exc)
        self.sent.append(Sent(task_id, signal.name, signal.key, canonical(signal.payload),
                              signal.is_again, outcome, found))  # fmt: skip
        if signal.again is not None:
            again = replace(signal, again=None, is_again=True)
            self.lane(signal.number).at(now + signal.again, partial(self.send, again))

    def _pause(self, number: int, length: float, now: float) -> None:
        from salvador_django.exceptions import InvalidTransition

        start = time.time()
        task_id = self.ids[number]
        try:
            status = retrying(lambda: _pause(task_id))
        except InvalidTransition as exc:
            if exc.status != "paused":
                self.count(f"pause refused ({exc.status})")
                return
            # Only this load pauses: a try whose commit was cut off by a database
            # restart paused it, and the retry found it paused. It is resumed as planned.
            status = "paused"
            self.count("paused by a try cut off by an outage")
        self.count("paused at once" if status == "paused" else f"pause requested ({status})")
        resume = partial(self._resume, number, start, RESUME_TRIES)
        self.lane(number).at(now + length, resume)

    def _resume(self, number: int, paused: float, tries: int, now: float) -> None:
        from salvador_django.exceptions import InvalidTransition
        from salvador_django.status import FINISHED

        task_id = self.ids[number]
        try:
            retrying(lambda: _resume(task_id))
        except InvalidTransition as exc:
            if exc.status not in FINISHED:
                # Neither paused nor running with a pause request: pending, its request
                # waiting for a worker to take the task and pause it. Again, later.
                self.count(f"resume refused ({exc.status})")
                if tries <= 1:
                    raise
                again = partial(self._resume, number, paused, tries - 1)
                self.lane(number).at(now + 0.5, again)
                return
        self.pauses.append(Pause(task_id, paused, time.time()))


class Cues(threading.Thread):
    """Watches the tasks, and hands each cued signal to its task's thread when its cue
    is seen: the task waits for it (``waiting``), or its wait for it timed out."""

    def __init__(self, load: WaitingLoad) -> None:
        super().__init__(name="chaos-waits-cues", daemon=True)
        self.load = load
        self.errors: list[str] = []
        self._signals: list[Outgoing] = []

    def add(self, signal: Outgoing) -> None:
        self._signals.append(signal)

    def run(self) -> None:
        from django.db import DatabaseError, connection

        since: dict[str, float] = {}
        while self._signals:
            time.sleep(CUE_EVERY)
            ids = {s.number: self.load.ids.get(s.number) for s in self._signals}
            try:
                waiting, timed_out = _cues({i for i in ids.values() if i is not None})
            except DatabaseError:
                connection.close()
                waiting, timed_out = {}, set()
            left = []
            for signal in self._signals:
                task_id = ids[signal.number]
                if task_id is None:
                    left.append(signal)
                    continue
                seen = (
                    waiting.get(task_id) == signal.name
                    if signal.cue == "waiting"
                    else (task_id, signal.name) in timed_out
                )
                waited = time.monotonic() - since.setdefault(signal.key, time.monotonic())
                if seen or waited > CUE_PATIENCE:
                    self.load.count(f"cue {signal.cue!r} " + ("seen" if seen else "not seen"))
                    lane = self.load.lane(signal.number)
                    lane.at(lane.now() + signal.delay, partial(self.load.send, signal))
                else:
                    left.append(signal)
            self._signals = left
        connection.close()


def _cues(ids: set[str]) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """Of the tasks ``ids``: the signal each waiting one waits for; the (task, name) of
    the waits that timed out."""
    from salvador_django.models import Task, Wait

    waiting = Task.objects.filter(id__in=ids, status="waiting").values_list("id", "waiting_for")
    timed_out = Wait.objects.filter(task_id__in=ids, outcome="timed out")
    return (
        {str(task): name for task, name in waiting},
        {(str(task), name) for task, name in timed_out.values_list("task_id", "name")},
    )


def _pause(task_id: str) -> str:
    from salvador_django.models import Task

    task = Task.objects.get(id=task_id)
    task.pause()
    return str(task.status)


def _resume(task_id: str) -> None:
    from salvador_django.models import Task

    Task.objects.get(id=task_id).resume()


def retrying(call: Callable[[], T], *, every: float = 0.2, limit: float = 120.0) -> T:
    """``call()``, tried again while the database is unreachable (for up to ``limit`` s)."""
    from django.db import DatabaseError, connection

    deadline = time.monotonic() + limit
    while True:
        try:
            return call()
        except DatabaseError:
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(every)
