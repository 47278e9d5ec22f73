"""Bulk requeue of the dead-letter set and purge of old tasks, on 100,000 rows."""

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from salvador_django import submit
from salvador_django.maintenance import parse_moment, purge_tasks, requeue_tasks, select_tasks
from salvador_django.models import StepRun, Task
from salvador_django.status import StepRunStatus, TaskStatus
from tests.support.tasks import make_tasks
from tests.support.waiting import run_in_threads

MANY = 100_000


def add_step_runs(alias, count):
    """One completed step run for each of ``count`` tasks."""
    connection = connections[alias]
    index = connection.ops.quote_name("index")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {StepRun._meta.db_table}
                (task_id, {index}, name, attempt, status, started_at, finished_at, error,
                 traceback, worker)
            SELECT id, 0, 'first', 1, %s, finished_at, finished_at, '', '', ''
            FROM {Task._meta.db_table} LIMIT %s
            """,
            [StepRunStatus.COMPLETED, count],
        )


def run(command, *args):
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def count(alias, **filters):
    return Task.objects.using(alias).filter(**filters).count()


# -- requeue ----------------------------------------------------------------------------


def test_requeue_100k_failed_tasks_in_bulk(backend):
    make_tasks(backend, MANY, status=TaskStatus.FAILED)
    make_tasks(backend, 10, status=TaskStatus.FAILED, workflow="breaks-second")
    make_tasks(backend, 10, status=TaskStatus.COMPLETED)
    output = run("requeueworkflows", "--workflow", "three-steps", "--batch-size", "5000")
    assert "requeued 50,000 / 100,000 (50%)" in output
    assert "Requeued 100,000 task(s)." in output
    assert count(backend, status="pending", workflow="three-steps") == MANY
    assert count(backend, status="failed", workflow="breaks-second") == 10  # other workflow
    assert count(backend, status="completed") == 10
    assert Task.objects.using(backend).due(["three-steps"]).count() == MANY
    sample = Task.objects.using(backend).filter(workflow="three-steps").first()
    assert (sample.step, sample.step_name, sample.attempt, sample.error) == (1, "second", 0, "")


def test_a_requeued_task_resumes_at_its_failed_step(backend):
    task = submit("breaks-second", {})
    from salvador_django.testing import run_until_idle

    run_until_idle()
    run("requeueworkflows", "--workflow", "breaks-second")
    task.refresh_from_db()
    assert (task.status, task.step_name) == ("pending", "second")
    run_until_idle()
    task.refresh_from_db()
    assert task.step_runs.filter(name="first").count() == 1  # the first step did not rerun
    assert task.step_runs.filter(name="second").count() == 2


def test_requeue_dry_run_changes_nothing(backend):
    make_tasks(backend, 7, status=TaskStatus.FAILED)
    output = run("requeueworkflows", "--dry-run")
    assert output.strip() == "Would requeue 7 task(s) (failed). Dry run: nothing changed."
    assert count(backend, status="failed") == 7


def test_requeue_since_only_takes_recent_failures(backend):
    make_tasks(backend, 3, status=TaskStatus.FAILED, finished_days_ago=0.1)
    make_tasks(backend, 4, status=TaskStatus.FAILED, finished_days_ago=3)
    assert "Requeued 3 task(s)." in run("requeueworkflows", "--since", "1d")
    assert count(backend, status="failed") == 4


def test_requeue_from_start_restarts_completed_and_failed_tasks(backend):
    make_tasks(backend, 2, status=TaskStatus.COMPLETED, state='{"first": 1}')
    make_tasks(backend, 2, status=TaskStatus.FAILED, state='{"first": 1}')
    run("requeueworkflows", "--status", "completed", "--status", "failed", "--from-start")
    tasks = list(Task.objects.using(backend).values_list("status", "step", "step_name", "state"))
    assert tasks == [("pending", 0, "first", {})] * 4


def test_requeue_refuses_completed_without_from_start(backend):
    with pytest.raises(CommandError, match="--from-start"):
        run("requeueworkflows", "--status", "completed")


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday"],
        ["--since", "5 parsecs"],
        ["--status", "running"],
        ["--batch-size", "0"],
    ],
)
def test_requeue_rejects_bad_arguments(backend, args):
    with pytest.raises(CommandError):
        run("requeueworkflows", *args)


def test_two_bulk_requeues_at_once_requeue_each_task_once(backend):
    make_tasks(backend, 2000, status=TaskStatus.FAILED)
    tasks = select_tasks(backend, statuses=[TaskStatus.FAILED])
    results = run_in_threads(lambda i: requeue_tasks(tasks.all(), batch_size=300), 2)
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 2000
    assert count(backend, status="pending") == 2000


# -- purge ------------------------------------------------------------------------------


def test_purge_100k_old_tasks_a_batch_at_a_time(backend):
    make_tasks(backend, MANY, status=TaskStatus.COMPLETED, finished_days_ago=40)
    add_step_runs(backend, 20_000)
    make_tasks(backend, 5, status=TaskStatus.COMPLETED, finished_days_ago=2)  # too recent
    make_tasks(backend, 5, status=TaskStatus.FAILED, finished_days_ago=40)  # failed: kept
    make_tasks(backend, 5, status=TaskStatus.RUNNING)  # never purged
    others_waited = []

    def submit_and_close():
        submit("three-steps", {})
        connections.close_all()

    def between_batches(purged):
        # No transaction is open between batches: another writer gets in at once.
        assert not connections[backend].in_atomic_block
        writer = threading.Thread(
            target=lambda: (submit("three-steps", {}), connections.close_all())
        )
        started = timezone.now()
        writer.start()
        writer.join(timeout=5)
        assert not writer.is_alive()
        others_waited.append((timezone.now() - started).total_seconds())

    tasks = select_tasks(
        backend,
        statuses=[TaskStatus.COMPLETED, TaskStatus.CANCELLED],
        finished_before=parse_moment("30d"),
    )
    assert purge_tasks(tasks, batch_size=10_000, on_batch=between_batches) == MANY
    assert len(others_waited) == 10
    assert max(others_waited) < 2
    assert count(backend, status="completed") == 5
    assert count(backend, status="failed") == 5
    assert count(backend, status="running") == 5
    assert count(backend, status="pending") == 10  # written between the batches
    assert not StepRun.objects.using(backend).exists()


def test_purge_command_reports_and_keeps_failed_tasks_by_default(backend):
    make_tasks(backend, 6, status=TaskStatus.COMPLETED, finished_days_ago=40)
    make_tasks(backend, 2, status=TaskStatus.CANCELLED, finished_days_ago=40)
    make_tasks(backend, 3, status=TaskStatus.FAILED, finished_days_ago=40)
    dry = run("purgeworkflows", "--older-than", "30d", "--dry-run")
    assert dry.startswith("Would delete 8 task(s) (completed, cancelled) finished before ")
    assert count(backend) == 11
    output = run("purgeworkflows", "--older-than", "30d", "--batch-size", "3")
    assert "Deleted 8 task(s) and their step runs." in output
    assert list(Task.objects.using(backend).values_list("status", flat=True)) == ["failed"] * 3
    run("purgeworkflows", "--older-than", "30d", "--status", "failed")
    assert count(backend) == 0


@pytest.mark.parametrize(
    "args", [[], ["--older-than", "soon"], ["--older-than", "30d", "--status", "pending"]]
)
def test_purge_rejects_bad_arguments(backend, args):
    with pytest.raises(CommandError):
        run("purgeworkflows", *args)


def test_parse_moment_takes_ages_and_dates():
    now = timezone.now()
    assert parse_moment("90m", now=now) == now - timedelta(minutes=90)
    assert parse_moment("2w", now=now) == now - timedelta(weeks=2)
    assert parse_moment("1.5h", now=now) == now - timedelta(minutes=90)
    assert parse_moment("2026-01-02").isoformat() == "2026-01-02T00:00:00+00:00"
    assert parse_moment("2026-01-02T03:04:05+02:00").isoformat() == "2026-01-02T03:04:05+02:00"
    with pytest.raises(ValueError, match="neither an age"):
        parse_moment("last tuesday")


def test_requeue_rejects_unknown_workflows(backend):
    with pytest.raises(CommandError, match="Unknown workflow"):
        run("requeueworkflows", "--workflow", "nope")
