"""A wait that blocks: what a step raises to stop at it, and what the task waits for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from salvador_django.exceptions import InvalidWait, PayloadError
from salvador_django.payloads import seconds_of

#: The longest wait or sleep: a century (beyond it, a typo).
MAX_WAIT_SECONDS = 100 * 365 * 24 * 3600


@dataclass(frozen=True)
class Blocked:
    """The wait the step stopped at: what the task now waits for."""

    position: int
    kind: str
    name: str
    #: When it ends by itself: a recorded time, or seconds from now, or neither.
    until: datetime | None = None
    seconds: float | None = None
    recorded: bool = False
    #: For a wait for children: their ids.
    children: tuple[Any, ...] = ()


class Suspend(BaseException):
    """The step must wait: the engine makes the task wait, and runs the step again later."""

    def __init__(self, blocked: Blocked) -> None:
        super().__init__(f"wait #{blocked.position} of the step")
        self.blocked = blocked


def wait_seconds(value: Any, what: str) -> float:
    """A wait's ``value`` (seconds or a ``timedelta``) as seconds; ``InvalidWait`` if bad."""
    try:
        return seconds_of(value, what, most=MAX_WAIT_SECONDS)
    except PayloadError as exc:
        raise InvalidWait(str(exc)) from exc
