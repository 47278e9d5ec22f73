"""factory-boy factories for tasks and step runs."""

from datetime import timedelta

import factory
from django.utils import timezone

from salvador_django.conf import get_settings
from salvador_django.models import StepRun, Task
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
