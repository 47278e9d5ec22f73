"""factory-boy factories for tasks, step runs and workers."""

from datetime import datetime, timedelta

import factory
from django.utils import timezone

from salvador_django.conf import get_settings
from salvador_django.models import StepRun, Task, WorkerProcess
from salvador_django.models.workers import WorkerKind
from salvador_django.status import StepRunStatus, TaskStatus


class SalvadorFactory(factory.django.DjangoModelFactory):
    """Writes to the database that holds tasks in the current test."""

    class Meta:
        abstract = True

    @classmethod
    def _get_manager(cls, model_class):
        return model_class._default_manager.using(get_settings().DATABASE)


class TaskFactory(SalvadorFactory):
    class Meta:
        model = Task

    workflow = "three-steps"
    body = factory.Sequence(lambda n: {"n": n})
    step = 0
    step_name = "first"

    class Params:
        failed = factory.Trait(
            status=TaskStatus.FAILED,
            step=1,
            step_name="second",
            failed_step="second",
            attempt=1,
            error="ValueError: second failed on purpose",
            finished_at=factory.LazyFunction(timezone.now),
        )
        completed = factory.Trait(
            status=TaskStatus.COMPLETED,
            step=3,
            step_name="",
            finished_at=factory.LazyFunction(timezone.now),
        )
        running = factory.Trait(
            status=TaskStatus.RUNNING,
            claimed_by="elsewhere:1:0:abc",
            lease_expires_at=factory.LazyFunction(lambda: timezone.now() + timedelta(seconds=60)),
        )
        cancelled = factory.Trait(
            status=TaskStatus.CANCELLED, finished_at=factory.LazyFunction(timezone.now)
        )


class StepRunFactory(SalvadorFactory):
    class Meta:
        model = StepRun

    task = factory.SubFactory(TaskFactory)
    index = 0
    name = "first"
    attempt = 1
    status = StepRunStatus.COMPLETED
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)


def failed_after_retries(attempts: int = 2, *, gap: float = 3.0, **fields) -> Task:
    """A failed task: its first step completed, then its second failed ``attempts`` times.

    Each attempt lasts 2 s and the next starts ``gap`` seconds after it ended.
    """
    task = TaskFactory(failed=True, attempt=attempts, **fields)
    start = timezone.now() - timedelta(seconds=3 + attempts * (2 + gap))
    StepRunFactory(
        task=task,
        index=0,
        name="first",
        started_at=start,
        finished_at=start + timedelta(seconds=1),
        output={"step": "first"},
    )
    for attempt in range(1, attempts + 1):
        begun = start + timedelta(seconds=2 + (attempt - 1) * (2 + gap))
        error = f"ValueError: second failed on purpose (attempt {attempt})"
        StepRunFactory(
            task=task,
            index=1,
            name="second",
            attempt=attempt,
            status=StepRunStatus.FAILED,
            started_at=begun,
            finished_at=begun + timedelta(seconds=2),
            error=error,
            traceback=(
                "Traceback (most recent call last):\n"
                '  File "tests/testapp/workflows.py", line 27, in step\n'
                '    raise ValueError(f"{name} failed on purpose")\n'
                f"{error}\n"
            ),
        )
    return task


def ended_task(
    finished_at: datetime,
    *,
    status: str = TaskStatus.COMPLETED,
    attempts: tuple[tuple[float, str], ...] = (),
    **fields,
) -> Task:
    """A task that ended at ``finished_at`` with ``status``, and a step run per
    ``(seconds, status)`` of ``attempts``, each ending at ``finished_at``."""
    trait = {"completed": "completed", "failed": "failed"}[str(status)]
    task = TaskFactory(**{trait: True}, finished_at=finished_at, **fields)
    for attempt, (seconds, outcome) in enumerate(attempts, 1):
        StepRunFactory(
            task=task,
            attempt=attempt,
            status=outcome,
            started_at=finished_at - timedelta(seconds=seconds),
            finished_at=finished_at,
        )
    return task


class WorkerProcessFactory(SalvadorFactory):
    """A worker seen just now (``gone=True``: seen an hour ago)."""

    class Meta:
        model = WorkerProcess

    name = factory.Sequence(lambda n: f"web-1:{4000 + n}:worker")
    kind = WorkerKind.WORKER
    host = "web-1"
    pid = factory.Sequence(lambda n: 4000 + n)
    version = "0.9.0"
    queue = "database"
    concurrency = 4
    workflows = factory.LazyFunction(list)
    running = factory.LazyFunction(list)
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=2))
    last_seen_at = factory.LazyFunction(timezone.now)

    class Params:
        gone = factory.Trait(
            last_seen_at=factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
        )
