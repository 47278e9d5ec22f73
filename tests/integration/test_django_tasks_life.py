"""A Django task's life on our backend, as Django's ``tests/tasks`` and django-tasks-db's
suite check it of a database backend (result fields and statuses as it runs, the async
API, ``using()``, results of the wrong task, context), and our triage of Django tasks:
requeue, cancel, purge, and ``runworkflows --queue-name``. SQLite and PostgreSQL, real
workers (a thread, or ``runworkflows --burst`` in one)."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from salvador_django.exceptions import Cancelled
from salvador_django.models import StepRun, Task
from salvador_django.tasks import compat
from tests.integration.test_django_tasks import drain, finished
from tests.support.tasks import make_due
from tests.support.waiting import running_worker, wait_until
from tests.testapp import more_tasks, tasks
from tests.testapp.models import Event

try:
    from django.tasks.exceptions import TaskResultMismatch
except ImportError:  # Django 5.2: the backport
    from django_tasks.exceptions import (  # type: ignore[assignment,unused-ignore]
        TaskResultMismatch,
    )

pytestmark = [
    pytest.mark.django_db(databases="__all__", transaction=True),
    pytest.mark.usefixtures("salvador_tasks"),
]

READY, RUNNING = compat.TaskResultStatus.READY, compat.TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = compat.TaskResultStatus.SUCCESSFUL, compat.TaskResultStatus.FAILED


def test_a_results_fields_follow_its_task_from_ready_to_running_to_successful(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    result = more_tasks.gate.enqueue(str(started), str(release))
    assert (result.status, result.is_finished, result.attempts) == (READY, False, 0)
    assert result.started_at is result.finished_at is result.last_attempted_at is None
    assert result.worker_ids == []
    assert result.errors == []
    with pytest.raises(ValueError, match="not finished"):
        result.return_value  # noqa: B018
    with running_worker():
        try:  # released whatever happens: a failed check must not leave the worker held
            wait_until(started.exists)
            running = assert_running(result)
        finally:
            release.touch()
        wait_until(lambda: finished(result))
    assert (result.status, result.return_value) == (SUCCESSFUL, "released")
    assert result.started_at == running.started_at
    assert result.finished_at is not None
    assert result.started_at <= result.finished_at
    assert result.worker_ids == running.worker_ids
    assert result.errors == []


def assert_running(result: compat.TaskResult[Any, Any]) -> compat.TaskResult[Any, Any]:
    """The result of ``result``'s task while it runs, read by this thread's connection
    (not the worker's: the claim is committed); ``result`` itself, refreshed."""
    running = more_tasks.gate.get_result(result.id)
    assert (running.status, running.is_finished) == (RUNNING, False)
    assert running.started_at is not None
    assert running.finished_at is None
    assert running.last_attempted_at is not None
    assert len(running.worker_ids) == 1
    assert running.attempts == 1
    with pytest.raises(ValueError, match="not finished"):
        running.return_value  # noqa: B018
    assert result.status == READY  # a result is a snapshot until refreshed
    result.refresh()
    assert result.status == RUNNING
    assert result.started_at == running.started_at
    return running


def test_refresh_reads_what_a_worker_did_since():
    result = tasks.add.enqueue(20, 22)
    drain()
    assert result.status == READY
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == (SUCCESSFUL, 42, 1)
    assert result.enqueued_at <= result.started_at <= result.finished_at
    again = tasks.add.get_result(result.id)
    fields = ["status", "enqueued_at", "started_at", "finished_at", "last_attempted_at"]
    assert [getattr(again, f) for f in fields] == [getattr(result, f) for f in fields]
    assert again.worker_ids == result.worker_ids
    assert again.return_value == 42
    result.refresh()  # refreshing a finished result changes nothing
    assert [getattr(again, f) for f in fields] == [getattr(result, f) for f in fields]


def test_aenqueue_aget_result_and_arefresh():
    async def enqueue() -> compat.TaskResult[Any, Any]:
        return await tasks.add.aenqueue(3, 4)

    async def fetch(result_id: str) -> compat.TaskResult[Any, Any]:
        return await tasks.add.aget_result(result_id)

    async def refresh(result: compat.TaskResult[Any, Any]) -> None:
        await result.arefresh()

    result = async_to_sync(enqueue)()
    assert result.status == READY
    assert result.args == [3, 4]
    assert async_to_sync(fetch)(result.id).status == READY
    drain()
    async_to_sync(refresh)(result)
    assert (result.status, result.return_value) == (SUCCESSFUL, 7)
    fetched = async_to_sync(fetch)(result.id)
    assert (fetched.status, fetched.return_value, fetched.id) == (SUCCESSFUL, 7, result.id)


def test_the_result_of_another_tasks_id_is_a_mismatch():
    result = tasks.add.enqueue(1, 2)

    async def fetch() -> compat.TaskResult[Any, Any]:
        return await tasks.record.aget_result(result.id)

    with pytest.raises(TaskResultMismatch, match=r"tests\.testapp\.tasks\.add"):
        tasks.record.get_result(result.id)
    with pytest.raises(TaskResultMismatch, match=r"tests\.testapp\.tasks\.add"):
        async_to_sync(fetch)()
    # The backend itself returns it, whatever its task.
    assert compat.task_backends["default"].get_result(result.id).task.func == tasks.add.func


def test_using_stores_priority_queue_and_run_after_and_returns_them(backend):
    later = (timezone.now() + timedelta(hours=1)).replace(microsecond=123456)
    task = more_tasks.introspect.using(priority=-20, queue_name="other", run_after=later)
    result = task.enqueue(1)
    for seen in (result, more_tasks.introspect.get_result(result.id)):
        assert (seen.task.priority, seen.task.queue_name) == (-20, "other")
        assert seen.task.run_after == later
        assert seen.status == READY
    row = Task.objects.using(backend).get(id=result.id)
    assert (row.priority, row.workflow, row.run_after) == (-20, "django.tasks:other", later)
    drain(workflows=["django.tasks:other"])
    result.refresh()
    assert result.status == READY  # not before its time
    assert make_due(row, backend) == 1
    drain(workflows=["django.tasks:other"])
    result.refresh()
    assert result.status == SUCCESSFUL
    assert (result.return_value["priority"], result.return_value["queue_name"]) == (-20, "other")


def test_a_task_without_using_keeps_its_decorators_priority(backend):
    result = more_tasks.introspect.enqueue()
    assert result.task.priority == 7
    assert result.task.run_after is None
    assert Task.objects.using(backend).get(id=result.id).priority == 7


def test_a_task_returning_what_json_cannot_hold_fails():
    result = tasks.not_json.enqueue()
    with running_worker():
        wait_until(lambda: finished(result))
    assert result.status == FAILED
    (error,) = result.errors  # not retried: it would return the same again
    assert error.exception_class_path == "salvador_django.exceptions.NotSerialisable"
    assert "not JSON" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018


def test_a_task_taking_context_reads_its_running_result():
    result = more_tasks.introspect.using(queue_name="other").enqueue(1, "two", key=[3])
    drain(workflows=["django.tasks:other"])
    result.refresh()
    assert result.status == SUCCESSFUL, result.errors
    assert result.return_value == {
        "id": result.id,
        "status": str(RUNNING),
        "attempt": 1,
        "args": [1, "two"],
        "kwargs": {"key": [3]},
        "backend": "default",
        "queue_name": "other",
        "priority": 7,
        "module_path": "tests.testapp.more_tasks.introspect",
        "started": True,
        "finished": False,
    }


def requeue_by_command(row: Task) -> None:
    call_command("requeueworkflows", "--workflow", row.workflow, stdout=io.StringIO())


def requeue_by_model(row: Task) -> None:
    row.requeue()  # what the admin's action does


@pytest.mark.parametrize("requeue", [requeue_by_command, requeue_by_model])
def test_a_failed_task_requeued_runs_again_and_keeps_its_errors(backend, tmp_path, requeue):
    needed = tmp_path / "needed"
    result = more_tasks.needs_file.enqueue(str(needed))
    drain()
    result.refresh()
    assert result.status == FAILED
    assert result.attempts == 1
    needed.touch()
    requeue(Task.objects.using(backend).get(id=result.id))
    result.refresh()
    assert result.status == READY
    assert result.finished_at is None
    drain()
    result.refresh()
    assert (result.status, result.return_value) == (SUCCESSFUL, "found")
    assert result.attempts == 2
    assert len(result.worker_ids) == 2
    (error,) = result.errors
    assert error.exception_class is tasks.Boom
    assert f"Boom: no {needed}" in error.traceback


def test_a_pending_task_cancelled_is_failed_and_never_runs(backend):
    label = str(uuid.uuid4())
    result = tasks.record.enqueue(label)
    Task.objects.using(backend).get(id=result.id).cancel()
    result.refresh()
    assert (result.status, result.is_finished, result.attempts) == (FAILED, True, 0)
    assert result.finished_at is not None
    assert result.errors[-1].exception_class_path == "salvador_django.exceptions.Cancelled"
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018
    drain()
    assert not Event.objects.using(backend).filter(task_id=label).exists()
    assert tasks.record.get_result(result.id).status == FAILED


def test_a_cancelled_tasks_error_names_an_importable_exception(backend):
    result = tasks.record.enqueue("cancelled")
    Task.objects.using(backend).get(id=result.id).cancel()
    result.refresh()
    assert result.errors[-1].exception_class is Cancelled


def test_purgeworkflows_deletes_finished_tasks_and_keeps_the_others(backend):
    done = tasks.add.enqueue(1, 1)
    broken = tasks.explode.enqueue("kept")
    cancelled = tasks.record.enqueue("cancelled")
    Task.objects.using(backend).get(id=cancelled.id).cancel()
    later = tasks.record.using(run_after=timezone.now() + timedelta(hours=1)).enqueue("later")
    drain()
    done.refresh()
    assert done.status == SUCCESSFUL
    assert StepRun.objects.using(backend).filter(task_id=done.id).exists()
    soon = (timezone.now() + timedelta(minutes=1)).isoformat()
    call_command(
        "purgeworkflows", "--older-than", soon, "--workflow", "django.tasks:default",
        stdout=io.StringIO(),
    )  # fmt: skip
    for gone in (done, cancelled):
        with pytest.raises(compat.TaskResultDoesNotExist):
            tasks.add.get_result(gone.id)
        with pytest.raises(compat.TaskResultDoesNotExist):
            gone.refresh()
    assert not StepRun.objects.using(backend).filter(task_id=done.id).exists()
    assert tasks.explode.get_result(broken.id).status == FAILED  # kept: not asked for
    assert tasks.record.get_result(later.id).status == READY


def run_command_in_thread(*args: str) -> None:
    """``call_command`` in another thread, as a worker process's main thread is not ours
    (no signal handlers installed in the test's process); re-raises its exception."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call_command(*args)
        except BaseException as exc:
            raised.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the command did not return"
    if raised:
        raise raised[0]


def test_runworkflows_queue_name_runs_only_that_queue(backend):
    default = tasks.add.enqueue(1, 2)
    other = tasks.add.using(queue_name="other").enqueue(3, 4)
    before = Task.objects.using(backend).get(id=default.id)
    run_command_in_thread("runworkflows", "--burst", "--queue-name", "other")
    other.refresh()
    default.refresh()
    assert (other.status, other.return_value) == (SUCCESSFUL, 7)
    assert default.status == READY
    assert Task.objects.using(backend).get(id=default.id).updated_at == before.updated_at
    run_command_in_thread("runworkflows", "--burst", "--queue-name", "default")
    default.refresh()
    assert (default.status, default.return_value) == (SUCCESSFUL, 3)


def test_runworkflows_refuses_an_unknown_queue_name(backend):
    pending = tasks.add.enqueue(1, 2)
    with pytest.raises(CommandError, match="no task backend has a queue named 'nowhere'"):
        run_command_in_thread("runworkflows", "--burst", "--queue-name", "nowhere")
    assert tasks.add.get_result(pending.id).status == READY
