"""The waiting workflow of the fault-injection run: ``chaos-waits``.

Three atomic steps, whose waits the run's sender answers at random moments:

- ``first`` waits for the signal ``first``, then sleeps ``body["sleeps"][0]`` seconds;
- ``second`` waits for ``second`` at most ``body["timeout"]`` seconds; when that
  times out, it catches ``WaitTimeout`` and waits for ``second`` again, without a
  timeout (the signal, sent late, is still taken);
- ``items`` waits for ``item``, sleeps ``body["sleeps"][1]`` seconds and waits for
  ``item`` again: two signals of one name, taken first in, first out.

Each run of a step appends to the waits log (``CHAOS_WAITS_LOG``, see
:mod:`.journal`) a line as it starts, and one each time a timer ended one of its
waits (a sleep returned, or a ``WaitTimeout`` was caught), with the database's clock
then, when the task was due again and when its claim took it. What each wait for a
signal returned is written as a ``Received`` row, which commits with the step's
checkpoint.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from django.db.models.functions import Now

from benchmarks.faults.journal import append
from benchmarks.faults.models import Received
from benchmarks.faults.waiting_checks import WORKFLOW
from salvador_django import Workflow
from salvador_django.exceptions import WaitTimeout
from salvador_django.models import Task


class StepWaits:
    """The waits of one run of a step, counted by position as the engine counts them."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.position = 0
        self.received: list[Received] = []
        append("CHAOS_WAITS_LOG", {"event": "start", **self._line()})

    def signal(self, name: str, timeout: float | None = None) -> Any:
        self.position += 1
        try:
            payload = self.task.wait_for(name, timeout=timeout)
        except WaitTimeout:
            self._woke("timed out")
            raise
        self.received.append(
            Received(
                task_id=self.task.id,
                step=self.task.step_name,
                position=self.position,
                name=name,
                payload=payload,
            )
        )
        return payload

    def sleep(self, seconds: float) -> None:
        self.position += 1
        self.task.sleep(seconds)
        self._woke("slept")

    def save(self) -> None:
        """Write what the waits received: with the (atomic) step's checkpoint."""
        Received.objects.bulk_create(self.received)

    def _woke(self, outcome: str) -> None:
        now: datetime = (
            Task.objects.filter(id=self.task.id).annotate(now=Now()).values_list("now", flat=True)
        ).get()
        line = {"position": self.position, "outcome": outcome, "db_now": now.timestamp()}
        append("CHAOS_WAITS_LOG", {"event": "woke", **self._line(), **line})

    def _line(self) -> dict[str, Any]:
        return {
            "t": time.time(),
            "task": str(self.task.id),
            "step": self.task.step_name,
            "pid": os.getpid(),
            "token": self.task.claimed_by,
            # When the task was due (its timer fired, a signal or a resume woke it, it
            # was submitted), and when this claim took it: the row as the claim
            # returned it.
            "due": self.task.run_after.timestamp(),
            "claimed": self.task.updated_at.timestamp(),
        }


waiting = Workflow(WORKFLOW)


@waiting.step("first", atomic=True)
def first(task: Task) -> None:
    waits = StepWaits(task)
    waits.signal("first")
    waits.sleep(task.body["sleeps"][0])
    waits.save()


@waiting.step("second", atomic=True)
def second(task: Task) -> None:
    waits = StepWaits(task)
    try:
        waits.signal("second", timeout=task.body["timeout"])
    except WaitTimeout:
        waits.signal("second")
    waits.save()


@waiting.step("items", atomic=True)
def items(task: Task) -> None:
    waits = StepWaits(task)
    waits.signal("item")
    waits.sleep(task.body["sleeps"][1])
    waits.signal("item")
    waits.save()
