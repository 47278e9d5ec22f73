"""The exceptions of salvador-django: one tree under :class:`SalvadorError`.

Each class's docstring is its default message.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class SalvadorError(Exception):
    """An error raised by salvador-django."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigurationError(SalvadorError, ImproperlyConfigured):
    """salvador-django is not configured correctly."""


class WorkflowNotFound(SalvadorError):
    """No workflow is registered under this name."""


class InvalidTransition(SalvadorError):
    """The task is not in a status that allows this operation."""

    def __init__(self, message: str | None = None, *, status: str | None = None) -> None:
        super().__init__(message)
        #: The task's status when the operation was refused, if known.
        self.status = status


class PayloadError(SalvadorError, ValueError):
    """The body is not JSON-serialisable or is larger than MAX_BODY_BYTES."""


class PermanentError(SalvadorError):
    """Raised by a step: this failure will not go away, so fail the task without retrying.

    Subclass it for your own permanent failures (a declined card, an invalid address).
    """


class NotSerialisable(PermanentError, TypeError):
    """A step returned, or left in ``task.state``, a value that is not JSON.

    Permanent: another attempt would fail the same way, so it is not retried.
    """


class QueueUnavailable(SalvadorError):
    """The queue cannot be reached; tasks wait in the database until it can."""


class LeaseLost(SalvadorError):
    """The worker no longer holds the claim on this task; it must write nothing."""


class StepNotFound(SalvadorError):
    """The task's next step no longer exists in its workflow."""


class StepsFailed(SalvadorError):
    """A graph task's steps failed for good: its error names each of them."""


class StepTimeout(SalvadorError):
    """The step ran longer than its timeout."""


class WaitTimeout(PermanentError):
    """A step's wait for a signal ended without one: its timeout passed.

    Raised by ``task.wait_for(name, timeout=...)``; the step may catch it and go on.
    Not retried: a replay of the step meets the same recorded timeout.
    """


class NotInStep(SalvadorError, RuntimeError):
    """Waits, sleeps and events belong to a running step: call them on the task it was given."""


class WaitsChanged(PermanentError):
    """A step's waits came in another order than when it ran before (its code changed)."""


class InvalidWait(PayloadError, PermanentError):
    """A step gave a wait, a sleep or an event bad input (a programming error).

    Permanent: another attempt would fail the same way, so the task fails at once.
    """


class InvalidChild(PayloadError, PermanentError):
    """A step gave ``start_child``, ``map`` or ``wait_for_children`` bad input.

    An unknown workflow, a body that is not JSON, a bad key: a programming error.
    Permanent: another attempt would fail the same way. Nothing is created.
    """


class NoResult(SalvadorError):
    """The task has no result: it has not completed (yet)."""

    def __init__(self, message: str | None = None, *, status: str | None = None) -> None:
        super().__init__(message)
        #: The task's status when its result was asked for.
        self.status = status


class ChildFailed(PermanentError):
    """A child task awaited by ``wait_for_children`` (or ``map``) failed or was cancelled.

    Permanent: a replay of the parent's step meets the same finished child. Requeue
    the child, then the parent.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        child_id: Any = None,
        workflow: str = "",
        status: str = "",
        error: str = "",
    ) -> None:
        super().__init__(message)
        #: The child's id, workflow, status (failed or cancelled) and error.
        self.child_id = child_id
        self.workflow = workflow
        self.status = status
        self.error = error


class Cancelled(SalvadorError):
    """A task was cancelled (by an operator, or with its parent): the error a Django
    task's result names for it (``TaskResult.errors``)."""
