"""The ``django.tasks`` backend: Django's task API on our tables and real workers, on
SQLite and PostgreSQL (the behaviours Django's ``tests/tasks`` and django-tasks-db's
suite check of a database backend, and ours: retries, triage, durability)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from salvador_django import TaskStatus
from salvador_django.exceptions import PayloadError
from salvador_django.models import StepRun, Task
from salvador_django.tasks import compat
from salvador_django.tasks.backend import queue_workflows
from salvador_django.worker import Worker, WorkerOptions
from tests.support.waiting import running_worker, wait_until
from tests.testapp import tasks
from tests.testapp.models import Event

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

READY, RUNNING = compat.TaskResultStatus.READY, compat.TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = compat.TaskResultStatus.SUCCESSFUL, compat.TaskResultStatus.FAILED


def drain(**options: Any) -> None:
    """Run what is due in this thread, then return (a burst)."""
    assert Worker(WorkerOptions.from_settings(burst=True, **options)).run()


def finished(result: compat.TaskResult[Any, Any]) -> bool:
    result.refresh()
    return result.is_finished


def test_a_task_runs_on_a_worker_and_its_result_says_so(salvador_tasks, backend):
    result = tasks.add.enqueue(2, 3)
    assert result.status == READY
    assert result.args == [2, 3]
    assert result.kwargs == {}
    assert isinstance(result.enqueued_at, datetime)
    assert result.started_at is None
    assert result.backend == "default"
    with running_worker():
        wait_until(lambda: finished(result))
    assert result.status == SUCCESSFUL
    assert result.return_value == 5
    assert result.started_at
    assert result.finished_at
    assert result.last_attempted_at
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert len(result.worker_ids) == 1
    assert result.attempts == 1
    assert result.errors == []
    fetched = tasks.add.get_result(result.id)
    assert fetched.return_value == 5
    assert fetched.task.func == tasks.add.func
    row = Task.objects.using(backend).get(id=result.id)
    assert (row.workflow, row.status) == ("django.tasks:default", "completed")
    assert row.meta == {"task": "tests.testapp.tasks.add"}


def test_a_task_enqueued_in_a_rolled_back_transaction_never_exists(salvador_tasks, backend):
    label = str(uuid.uuid4())
    enqueued: list[compat.TaskResult[Any, Any]] = []

    def enqueue_then_fail() -> None:
        with transaction.atomic(using=backend):
            enqueued.append(tasks.record.enqueue(label))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()
    (result,) = enqueued
    with pytest.raises(compat.TaskResultDoesNotExist):
        tasks.record.get_result(result.id)
    drain()
    assert not Event.objects.using(backend).filter(task_id=label).exists()


def test_a_failure_is_recorded_with_its_exception_and_traceback(salvador_tasks):
    result = tasks.explode.enqueue("kaboom")
    with running_worker():
        wait_until(lambda: finished(result))
    assert result.status == FAILED
    (error,) = result.errors
    assert error.exception_class_path == "tests.testapp.tasks.Boom"
    assert error.exception_class is tasks.Boom
    assert "Boom: kaboom" in error.traceback
    assert "def explode" not in error.traceback
    assert "raise Boom(message)" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


def test_retries_follow_the_backend_policy_and_the_context_counts_attempts(salvador_tasks):
    result = tasks.flaky.enqueue(fail_until=3)
    with running_worker():
        wait_until(lambda: finished(result))
    assert result.status == SUCCESSFUL, result.errors
    assert result.return_value == {"attempt": 3, "id": result.id}
    assert result.attempts == 3
    assert len(result.worker_ids) == 3
    assert [e.exception_class_path for e in result.errors] == ["tests.testapp.tasks.Boom"] * 2


def test_an_async_task_runs(salvador_tasks):
    result = tasks.add_later.enqueue(4, 5)
    with running_worker():
        wait_until(lambda: finished(result))
    assert (result.status, result.return_value) == (SUCCESSFUL, 9)


def test_a_deferred_task_waits_for_its_time(salvador_tasks, backend):
    label = str(uuid.uuid4())
    later = tasks.record.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(label)
    drain()
    later.refresh()
    assert later.status == READY
    assert later.task.run_after is not None
    assert not Event.objects.using(backend).filter(task_id=label).exists()


def test_priority_orders_the_queue(salvador_tasks, backend):
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    tasks.record.enqueue(first)
    tasks.urgent.enqueue(second)
    drain(concurrency=1)
    order = list(Event.objects.using(backend).order_by("id").values_list("step", flat=True))
    assert order == ["urgent", "record"]


class Heard:
    """Django's three task signals, as received: (signal, result) in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, compat.TaskResult[Any, Any]]] = []
        self.status_then: list[str] = []  # the enqueued result is the caller's: it changes
        self.receivers = {
            compat.task_enqueued: self.receiver("enqueued"),
            compat.task_started: self.receiver("started"),
            compat.task_finished: self.receiver("finished"),
        }

    def receiver(self, name: str) -> Any:
        def receive(sender: Any, task_result: compat.TaskResult[Any, Any], **kwargs: Any) -> None:
            self.seen.append((name, task_result))
            self.status_then.append(task_result.status)

        return receive

    def __enter__(self) -> Heard:
        for signal, receive in self.receivers.items():
            signal.connect(receive)
        return self

    def __exit__(self, *exc: object) -> None:
        for signal, receive in self.receivers.items():
            signal.disconnect(receive)

    def statuses(self) -> list[tuple[str, str]]:
        return [
            (name, status) for (name, _), status in zip(self.seen, self.status_then, strict=True)
        ]


def test_signals_are_sent_at_enqueue_commit_start_and_finish(salvador_tasks, backend):
    with Heard() as heard:
        with transaction.atomic(using=backend):
            result = tasks.add.enqueue(1, 1)
            assert heard.seen == []  # not before the commit
        assert heard.statuses() == [("enqueued", READY)]
        with running_worker():
            wait_until(lambda: finished(result) and len(heard.seen) == 3)
    assert heard.statuses() == [("enqueued", READY), ("started", RUNNING), ("finished", SUCCESSFUL)]
    (_, started), (_, done) = heard.seen[1:]
    assert (started.attempts, started.worker_ids) == (1, result.worker_ids)
    assert started.started_at == result.started_at
    assert started.last_attempted_at is not None
    # The finished result is the stored one (but for when it finished: the worker's
    # clock, read just after the commit, not the database's).
    assert (done.return_value, done.worker_ids, done.errors) == (2, result.worker_ids, [])
    assert done.finished_at is not None
    assert abs((done.finished_at - result.finished_at).total_seconds()) < 1


def test_the_signals_of_a_retried_task_count_its_attempts(salvador_tasks):
    with Heard() as heard:
        result = tasks.flaky.enqueue(fail_until=3)
        with running_worker():
            wait_until(lambda: finished(result) and len(heard.seen) == 5)
    started = [r for name, r in heard.seen if name == "started"]
    assert [r.attempts for r in started] == [1, 2, 3]
    assert [len(r.errors) for r in started] == [0, 1, 2]
    ((_, done),) = [(name, r) for name, r in heard.seen if name == "finished"]
    assert (done.status, done.attempts, len(done.errors)) == (SUCCESSFUL, 3, 2)
    assert done.return_value == result.return_value


def test_bad_tasks_and_arguments_are_refused_like_django_does(salvador_tasks):
    def local() -> None:
        pass

    with pytest.raises(compat.InvalidTask, match="module level"):
        tasks.task(local)
    with pytest.raises(compat.InvalidTask, match="priority"):
        tasks.add.using(priority=101)
    with pytest.raises(compat.InvalidTask, match="aware"):
        tasks.add.using(run_after=timezone.now().replace(tzinfo=None))
    with pytest.raises(compat.InvalidTask, match="Queue 'nowhere'"):
        tasks.add.using(queue_name="nowhere")
    with pytest.raises(TypeError):
        tasks.add.enqueue(object(), 1)
    with pytest.raises(PayloadError, match="round trip"):
        tasks.add.enqueue({1: "a"}, 1)
    with pytest.raises(compat.TaskResultDoesNotExist):
        tasks.add.get_result("not-a-uuid")
    with pytest.raises(compat.TaskResultDoesNotExist):
        tasks.add.get_result(str(uuid.uuid4()))


def test_a_row_naming_anything_but_a_django_task_is_never_run(salvador_tasks, backend):
    result = tasks.add.enqueue(1, 2)
    row = Task.objects.using(backend).get(id=result.id)
    row.body = {**row.body, "task": "tests.testapp.tasks.plain_function"}
    row.save(update_fields=["body"])
    with running_worker():
        wait_until(
            lambda: Task.objects.using(backend).get(id=result.id).status == TaskStatus.FAILED
        )
    row.refresh_from_db()
    assert "not a Django task" in row.error
    assert StepRun.objects.using(backend).filter(task_id=row.id).count() == 1  # not retried
    with pytest.raises(compat.TaskResultDoesNotExist):
        compat.task_backends["default"].get_result(result.id)


def test_a_task_starts_a_workflow_and_a_step_enqueues_a_task(salvador_tasks, backend):
    result = tasks.start_workflow.enqueue("from a task")
    with running_worker():
        wait_until(lambda: finished(result))
        child = Task.objects.using(backend).get(id=result.return_value)
        wait_until(lambda: Task.objects.using(backend).get(id=child.id).status == "completed")


def test_the_other_queue_is_a_workflow_of_its_own(salvador_tasks, backend):
    result = tasks.add.using(queue_name="other").enqueue(1, 2)
    assert Task.objects.using(backend).get(id=result.id).workflow == "django.tasks:other"
    drain(workflows=["django.tasks:default"])
    result.refresh()
    assert result.status == READY
    drain(workflows=["django.tasks:other"])
    result.refresh()
    assert (result.status, result.return_value) == (SUCCESSFUL, 3)


def test_a_task_runs_through_either_queue(salvador_tasks, queue_name):
    result = tasks.add.enqueue(20, 22)
    with running_worker():
        wait_until(lambda: finished(result))
    assert (result.status, result.return_value) == (SUCCESSFUL, 42)


def test_queue_names_select_the_queues_workflows(salvador_tasks):
    assert queue_workflows(["other"]) == ["django.tasks:other"]
    assert queue_workflows(["default", "other"]) == ["django.tasks:default", "django.tasks:other"]
    with pytest.raises(LookupError):
        queue_workflows(["nowhere"])


def test_the_backend_checks_that_the_app_is_installed(salvador_tasks, settings):
    backend = compat.task_backends["default"]
    assert list(backend.check()) == []
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "salvador_django"]
    (error,) = backend.check()
    assert error.id == "salvador.E050"


def test_the_admin_lists_a_django_task_with_its_function(salvador_tasks, backend, client):
    if backend != "default":
        pytest.skip("the admin's users are in the default database: its tests run there")
    result = tasks.add.enqueue(1, 2)
    client.force_login(User.objects.create_superuser("admin", password="x"))
    admin_client = client
    page = admin_client.get(reverse("admin:salvador_task_changelist")).content.decode()
    assert "django.tasks:default<br><small>tests.testapp.tasks.add</small>" in page
    found = admin_client.get(
        reverse("admin:salvador_task_changelist"), {"q": "task=tests.testapp.tasks.add"}
    ).content.decode()
    assert result.id[:8] in found
