"""How a worker runs: its options, from the ``SALVADOR`` setting and the command line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from salvador_django.conf import get_settings
from salvador_django.models import WorkerKind
from salvador_django.registry import registry


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs; defaults come from the ``SALVADOR`` setting."""

    workflows: tuple[str, ...]
    concurrency: int
    poll_interval: float
    lease_seconds: float
    sweep_interval: float
    max_recoveries: int
    burst: bool = False
    grace_period: float = 30.0
    #: Abandon (and replace) threads whose step hangs past its timeout. A process
    #: pool's children leave that to the supervisor, which kills them instead.
    abandon_hung_steps: bool = True
    #: Warn of pending tasks of unregistered workflows at start. A process pool warns
    #: once, in its supervisor, rather than in each child it starts.
    warn_of_unregistered: bool = True
    #: In burst mode: how long the database or the queue may stay unreachable before
    #: the worker gives up (and ``runworkflows --burst`` exits non-zero).
    give_up_after: float = 60.0
    #: Steps of one graph task run at the same time (0: ``concurrency``; a pool child's).
    parallel_steps: int = 0
    #: What the workers table says it is (a process pool's children say so).
    kind: str = WorkerKind.WORKER

    @classmethod
    def from_settings(
        cls,
        *,
        workflows: Sequence[str] | None = None,
        concurrency: int | None = None,
        poll_interval: float | None = None,
        burst: bool = False,
        grace_period: float = 30.0,
        give_up_after: float = 60.0,
    ) -> WorkerOptions:
        settings = get_settings()
        return cls(
            workflows=tuple(workflows or registry.names()),
            concurrency=concurrency or settings.CONCURRENCY,
            poll_interval=poll_interval or settings.POLL_INTERVAL,
            lease_seconds=settings.LEASE_SECONDS,
            sweep_interval=settings.SWEEP_INTERVAL,
            max_recoveries=settings.MAX_RECOVERIES,
            burst=burst,
            grace_period=grace_period,
            give_up_after=give_up_after,
        )
