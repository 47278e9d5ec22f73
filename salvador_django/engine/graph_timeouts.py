"""Step timeouts in a graph task's run: an attempt that outlives its step's timeout fails.

The run watches its branches' deadlines while it waits for them; an attempt still
running a grace period past its deadline fails with :class:`StepTimeout` (its retry
policy decides what follows) and its thread is let go: whatever the step does after
is not written.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from salvador_django.exceptions import StepTimeout

if TYPE_CHECKING:
    from salvador_django.engine.graph import GraphRun

#: How long past its timeout a step may run before its attempt fails without it.
TIMEOUT_GRACE_SECONDS = 1.0


def until_overdue(run: GraphRun) -> float | None:
    """Seconds until a running step with a timeout is overdue (None: none has one)."""
    deadlines = [
        a.deadline for a in run.attempts_running.values() if a.deadline and not a.step.atomic
    ]
    if not deadlines:
        return None
    return max(0.0, min(deadlines) + TIMEOUT_GRACE_SECONDS - time.monotonic())


def abandon_overdue(run: GraphRun) -> None:
    """Fail the attempts that outlived their step's timeout; their threads are let go.

    What such a step does after (return, raise) is not written. The branch threads
    gain a thread for each one let go. An atomic step is left to end by itself: it
    holds the run's lock, which the failure would need.
    """
    now = time.monotonic()
    for name, attempt in list(run.attempts_running.items()):
        if attempt.deadline is None or attempt.step.atomic:
            continue
        if now < attempt.deadline + TIMEOUT_GRACE_SECONDS:
            continue
        with run.lock, run.books:  # not while its checkpoint is being written
            if name in run.done:  # it checkpointed just now: let it end
                continue
            run.abandoned.add(id(attempt))
        run.attempts_running.pop(name)
        run.running.discard(name)
        run.engine.branches().replace_one()
        exc = StepTimeout(
            f"Step {name!r} ran longer than its timeout of {attempt.step.timeout}s "
            "and was abandoned."
        )
        run._failed(attempt, exc)
