"""The claim reads the due index however much history the task table holds."""

from __future__ import annotations

import json

import pytest
from django.db import connections

from salvador_django import sql
from salvador_django.models import Task
from salvador_django.status import TaskStatus
from tests.support.tasks import make_tasks

HISTORY = 50_000
PENDING = 500


def claim_plan(alias: str) -> str:
    """EXPLAIN (JSON) of the claim a worker of ``three-steps`` runs."""
    connection = connections[alias]
    query = sql.claim_query(sql.CLAIM_POSTGRESQL, connection, Task, workflows=1)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {query}", ["three-steps", 1, "plan-token", 60])
        return json.dumps(cursor.fetchone()[0])


@pytest.mark.only_backend("postgres")
def test_claim_uses_the_due_index_with_a_large_history_of_another_workflow(backend):
    # Finished tasks of one workflow, pending ones of another: planned as independent,
    # status and workflow would look like a handful of rows and lead the planner to
    # read every pending row through the triage and workflow indexes on each claim.
    make_tasks(backend, HISTORY, status=TaskStatus.COMPLETED, workflow="history")
    make_tasks(backend, PENDING, status=TaskStatus.PENDING, workflow="three-steps")
    with connections[backend].cursor() as cursor:
        cursor.execute(f"ANALYZE {Task._meta.db_table}")

    plan = claim_plan(backend)

    assert '"Index Name": "salvador_task_due"' in plan, plan
    assert "salvador_task_triage" not in plan
    assert "salvador_task_workflow" not in plan
