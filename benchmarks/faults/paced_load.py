"""A thread that submits a run's tasks of one workflow at a steady pace."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("chaos")


class PacedLoad(threading.Thread):
    """Submits ``count`` tasks of ``workflow`` over ``duration`` seconds, one every
    ``duration / count``, each under the idempotency key ``<key>-<number>``; a
    database error is tried again (the database may be restarting). ``work`` is a
    range of seconds the steps sleep. Subclasses say what each task's body is."""

    workflow = ""
    key = ""
    label = ""
    #: Where in its slot of the pace each task is submitted (0: at its start).
    offset = 0.5

    def __init__(
        self, rng: random.Random, count: int, duration: float, work: tuple[float, float]
    ) -> None:
        super().__init__(name=f"chaos-{self.label}-load", daemon=True)
        self.rng, self.count, self.duration, self.work = rng, count, duration, work
        self.submitted: dict[int, str] = {}
        self.errors: list[str] = []

    def body(self, number: int) -> Any:
        raise NotImplementedError

    @contextlib.contextmanager
    def submitting(self, number: int) -> Iterator[None]:
        """Around the submit of task ``number`` (and its tries again): nothing here."""
        yield

    def run(self) -> None:
        from django.db import connection

        try:
            self._submit_all()
        except Exception as exc:  # recorded: the run fails
            logger.exception("chaos: the %s load failed", self.label)
            self.errors.append(repr(exc))
        finally:
            connection.close()

    def _submit_all(self) -> None:
        from django.db import DatabaseError, connection

        from salvador_django import submit

        began = time.monotonic()
        pace = self.duration / max(self.count, 1)
        for number in range(self.count):
            time.sleep(max(0.0, began + (number + self.offset) * pace - time.monotonic()))
            body = self.body(number)
            with self.submitting(number):
                while True:
                    try:
                        task = submit(self.workflow, body, idempotency_key=f"{self.key}-{number}")
                        break
                    except DatabaseError:
                        connection.close()
                        time.sleep(0.2)
            self.submitted[number] = str(task.id)
