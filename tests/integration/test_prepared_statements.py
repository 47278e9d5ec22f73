"""The claim and the checkpoint are prepared on PostgreSQL when the connection allows it.

The suite's PostgreSQL connection sets ``OPTIONS["prepare_threshold"]`` (5); Django's
default, and the setting behind a transaction-pooling proxy, is None: nothing prepared.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

import pytest
from django.db import connections

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from salvador_django.testing import run_until_idle

pytestmark = pytest.mark.only_backend("postgres")

TASKS = 6  # three steps each: twelve checkpoints between steps, six that complete


def executions(alias: str) -> dict[str, int]:
    """How often this session ran our prepared claim and checkpoint statements.

    From ``pg_prepared_statements`` (PostgreSQL 14+): each execution of a prepared
    statement counts one plan, generic or custom.
    """
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        rows = cursor.fetchall()
    return {
        "claim": sum(n for s, n in rows if "FOR UPDATE SKIP LOCKED" in s),
        "checkpoint": sum(n for s, n in rows if "INSERT INTO" in s and "salvador_steprun" in s),
    }


@pytest.fixture
def unprepared(backend) -> Iterator[None]:
    """The connection as Django leaves it by default: no prepared statements."""
    connection = connections[backend]
    connection.ensure_connection()
    threshold = connection.connection.prepare_threshold
    connection.connection.prepare_threshold = None
    try:
        yield
    finally:
        connection.connection.prepare_threshold = threshold


def run_tasks(alias: str) -> list[Task]:
    tasks = [submit("three-steps", {"n": n}) for n in range(TASKS)]
    assert run_until_idle() == TASKS  # in this thread: on this test's connection
    return [Task.objects.using(alias).get(id=task.id) for task in tasks]


def assert_ran(finished: list[Task]) -> None:
    assert {task.status for task in finished} == {TaskStatus.COMPLETED}
    assert all(task.state == {"first": 1, "second": 1, "third": 1} for task in finished)
    assert [r.state for r in finished[0].step_runs.order_by("index")] == [
        {"first": 1},
        {"first": 1, "second": 1},
        {"first": 1, "second": 1, "third": 1},
    ]


def test_claims_and_checkpoints_run_prepared(backend):
    if connections[backend].settings_dict["OPTIONS"].get("prepare_threshold") is None:
        pytest.skip("the suite runs with SALVADOR_TEST_PG_PREPARE='': nothing is prepared")
    before = executions(backend)

    finished = run_tasks(backend)

    assert_ran(finished)
    after = executions(backend)
    # psycopg prepares a statement on its fifth run (the suite's threshold): at least
    # the last seven of the twelve checkpoints between steps ran prepared, and the
    # last two of the seven claims (the seventh found nothing).
    assert after["checkpoint"] - before["checkpoint"] >= 7
    assert after["claim"] - before["claim"] >= 2


def test_prepared_claims_load_times_in_utc(backend):
    finished = run_tasks(backend)
    again = submit("three-steps", {})
    claimed = Task.objects.using(backend).claim(["three-steps"], "token", 60)

    assert [task.id for task in claimed] == [again.id]
    assert claimed[0].started_at is not None
    assert claimed[0].started_at.tzinfo == UTC
    assert claimed[0].started_at >= finished[-1].finished_at


def test_without_a_threshold_nothing_runs_prepared(backend, unprepared):
    before = executions(backend)

    finished = run_tasks(backend)

    assert_ran(finished)
    assert executions(backend) == before
