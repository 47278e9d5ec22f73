"""Retry policy of a step."""

from __future__ import annotations

import random
from dataclasses import dataclass

from salvador_django.exceptions import PermanentError


@dataclass(frozen=True)
class Retry:
    """How often a failing step is tried again, and how long to wait between tries.

    ``max_attempts`` counts the first try. The wait before attempt ``n + 1`` is
    ``initial_delay * backoff ** (n - 1)`` seconds, capped at ``max_delay``; with
    ``jitter`` it is drawn uniformly from the upper half of that wait, so retries of
    many tasks that failed together spread out. Only exceptions that are instances of
    ``retry_on`` are retried; any other exception, and any
    :class:`~salvador_django.exceptions.PermanentError`, fails the task at once.
    """

    max_attempts: int = 3
    backoff: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 300.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError("Retry.max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValueError("Retry.max_attempts must be at least 1 (it counts the first try)")
        if self.backoff < 1:
            raise ValueError("Retry.backoff must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("Retry delays must not be negative")
        retry_on: object = self.retry_on
        if isinstance(retry_on, type):  # a single class is accepted for convenience
            object.__setattr__(self, "retry_on", (retry_on,))
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on):
            raise TypeError("Retry.retry_on must be a tuple of exception classes")

    def should_retry(self, exc: BaseException, attempts_made: int) -> bool:
        """Whether another attempt follows a failure after ``attempts_made`` attempts."""
        return (
            attempts_made < self.max_attempts
            and isinstance(exc, self.retry_on)
            and not isinstance(exc, PermanentError)
        )

    def delay(self, attempts_made: int) -> float:
        """Seconds to wait before the attempt that follows ``attempts_made`` attempts."""
        wait = min(self.max_delay, self.initial_delay * self.backoff ** max(0, attempts_made - 1))
        if self.jitter:
            wait = random.uniform(wait / 2, wait)  # noqa: S311 - not for security
        return wait


NO_RETRY = Retry(max_attempts=1, jitter=False)
