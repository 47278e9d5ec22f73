"""Each Django task queue is a one-step workflow: ``django.tasks:<queue>`` (or
``django.tasks:<alias>:<queue>`` for a backend alias other than ``default``).

The step imports the task by the module path stored with it, and only runs it if the
object found there is a Django ``Task``: a row never names an arbitrary callable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from salvador_django.registry import registry
from salvador_django.definitions import Step, Workflow
from salvador_django.exceptions import PermanentError
from salvador_django.retry import Retry
from salvador_django.tasks import compat

if TYPE_CHECKING:
    from salvador_django.models import Task

#: The prefix of every Django task queue's workflow name.
PREFIX = "django.tasks:"
#: The name of the one step.
STEP = "run"


def workflow_name(alias: str, queue_name: str) -> str:
    """The workflow of ``queue_name`` of the task backend ``alias``."""
    return f"{PREFIX}{queue_name}" if alias == "default" else f"{PREFIX}{alias}:{queue_name}"


def is_django_task(workflow: str) -> bool:
    return workflow.startswith(PREFIX)


class QueueWorkflow(Workflow):
    """A Django task queue: one step that runs the task named in the body; its retry
    policy is the task's own (``@task(retry=...)``), else the backend's ``RETRY``."""

    def __init__(self, name: str, queue_name: str, *, retry: Retry | None) -> None:
        super().__init__(name, retry=retry)
        self.queue_name = queue_name
        self.step(STEP, run_django_task)

    def retry_for(self, step: Step, task: Task | None = None) -> Retry:
        if task is not None:
            try:
                own = retry_of(load_task(task.body["task"]))
            except PermanentError:  # no task there: the failure is that one, not retried
                own = None
            if own is not None:
                return own
        return super().retry_for(step, task)


def ensure_queue(alias: str, queue_name: str, retry: Retry | None) -> QueueWorkflow:
    """The workflow of a queue, registered in this process if it was not yet."""
    name = workflow_name(alias, queue_name)
    if name in registry:
        found = registry.get(name)
        if not isinstance(found, QueueWorkflow):
            raise PermanentError(f"Workflow {name!r} is registered and is not a task queue.")
        return found
    return QueueWorkflow(name, queue_name, retry=retry)


def load_task(path: str) -> compat.Task:
    """The Django task at ``path``; ``PermanentError`` if there is none (the row is not
    run, whatever object the path names)."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise PermanentError(f"Cannot import the task {path!r}: {exc}") from exc
    if not isinstance(found, compat.Task):
        raise PermanentError(
            f"{path!r} is a {type(found).__name__}, not a Django task: it is not run."
        )
    return found


def retry_of(django_task: compat.Task) -> Retry | None:
    """A task's own retry policy, from ``@task(retry=...)`` (:class:`SalvadorTask`)."""
    policy = getattr(django_task, "retry", None)
    return as_retry(policy, f"the retry of task {django_task.module_path!r}")


def as_retry(policy: Any, what: str) -> Retry | None:
    """``policy`` (None, a :class:`Retry` or a dict of its fields) as a Retry."""
    if policy is None or isinstance(policy, Retry):
        return policy
    if isinstance(policy, dict):
        try:
            return Retry(**policy)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"{what}: {exc}") from exc
    raise PermanentError(f"{what} must be a salvador_django.Retry or a dict, not {policy!r}.")


def run_django_task(task: Task) -> Any:
    """The step: run the Django task named in the body with its arguments."""
    from salvador_django.tasks.results import result_of  # it imports this module

    body = task.body
    django_task = load_task(body["task"])
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    if django_task.takes_context:
        context = compat.TaskContext(task_result=result_of(task))
        value = django_task.call(context, *args, **kwargs)
    else:
        value = django_task.call(*args, **kwargs)
    return compat.normalize_json(value)


def register_configured_queues(aliases: list[str]) -> None:
    """Create the backends ``aliases`` of ``TASKS``: their queues' workflows register,
    so that a worker runs them without having enqueued anything."""
    for alias in aliases:
        compat.task_backends[alias]


def queue_workflows(queue_names: list[str]) -> list[str]:
    """The workflows of the task queues named ``queue_names``, in every backend of ours
    (``runworkflows --queue-name``); ``LookupError`` names one no backend has."""
    found = []
    for queue_name in queue_names:
        names = [
            workflow.name
            for workflow in map(registry.get, registry.names())
            if isinstance(workflow, QueueWorkflow) and workflow.queue_name == queue_name
        ]
        if not names:
            names = [_any_queue(queue_name)]
        found += names
    return found


def _any_queue(queue_name: str) -> str:
    """The workflow of ``queue_name`` in a backend that takes any queue (``QUEUES: []``)."""
    for alias, backend in _our_backends():
        if not backend.queues:
            return ensure_queue(alias, queue_name, backend.retry).name
    raise LookupError(queue_name)


def _our_backends() -> list[tuple[str, Any]]:
    from django.conf import settings

    from salvador_django.tasks.backend import SalvadorBackend

    aliases = list(getattr(settings, "TASKS", None) or {})
    backends = [(alias, compat.task_backends[alias]) for alias in aliases]
    return [(alias, b) for alias, b in backends if isinstance(b, SalvadorBackend)]
