"""A progress line for long management commands: ``requeued 12,000 / 100,000 (12%)``."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.management.base import OutputWrapper


class Progress:
    """Prints how far a batch job is: in place on a terminal, every 10% otherwise."""

    def __init__(self, write: Callable[[str], None], *, tty: bool, total: int, verb: str) -> None:
        self.write = write
        self.total = total
        self.verb = verb
        self.done = 0
        self.started = time.monotonic()
        self._tty = tty
        self._next_tenth = 1

    @classmethod
    def on(cls, output: OutputWrapper, *, total: int, verb: str) -> Progress:
        """Progress written to a command's ``self.stdout``."""
        return cls(
            lambda text: output.write(text, ending=""), tty=output.isatty(), total=total, verb=verb
        )

    def advance(self, count: int) -> None:
        self.done += count
        if self._tty:
            self.write("\r" + self._line())
            return
        tenth = self.done * 10 // max(self.total, 1)
        if tenth >= self._next_tenth:
            self._next_tenth = tenth + 1
            self.write(self._line() + "\n")

    def finish(self) -> None:
        if self._tty:
            self.write("\n")

    def _line(self) -> str:
        percent = 100 * self.done // max(self.total, 1)
        elapsed = time.monotonic() - self.started
        return f"{self.verb} {self.done:,} / {self.total:,} ({percent}%) in {elapsed:.1f}s"
