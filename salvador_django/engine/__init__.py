"""The engine: run a claimed task's steps in order, checkpointing after each one.

- :mod:`.runner`: the forward run (:class:`Engine`);
- :mod:`.failures`: what a failed attempt leads to (retry, failure, cancellation, timeout);
- :mod:`.compensation`: undoing completed steps, last first;
- :mod:`.writes`: the fenced writes, each a move of :mod:`salvador_django.transitions`;
- :mod:`.outcome`: how a run ended.
"""

from salvador_django.engine.outcome import CheckpointFailed, Outcome
from salvador_django.engine.runner import Engine

__all__ = ["CheckpointFailed", "Engine", "Outcome"]
