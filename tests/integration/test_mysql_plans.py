"""On MySQL/MariaDB the hot queries read an index, as on PostgreSQL.

Django cannot build partial indexes there; ``PartialIndex`` builds each as a full
index led by its condition's columns (``salvador_django/models/indexes.py``). These
tests read ``EXPLAIN`` of each query over a table with a large history.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connections
from django.db.models.functions import Now

from salvador_django import sql
from salvador_django.models import Schedule, Signal, Task
from salvador_django.status import TaskStatus
from tests.support.tasks import make_tasks

pytestmark = pytest.mark.only_backend("mariadb")

HISTORY = 20_000


def plan(alias: str, queryset: Any) -> str:
    """``EXPLAIN FORMAT=JSON`` of ``queryset`` on ``alias``."""
    query, params = queryset.query.get_compiler(using=alias).as_sql()
    with connections[alias].cursor() as cursor:
        cursor.execute(f"EXPLAIN FORMAT=JSON {query}", params)
        return json.dumps(json.loads(cursor.fetchone()[0]))


@pytest.fixture
def history(backend):
    # A long history of the workflow the claim serves, and of another.
    make_tasks(backend, HISTORY, status=TaskStatus.COMPLETED, workflow="three-steps")
    make_tasks(backend, HISTORY, status=TaskStatus.COMPLETED, workflow="history")
    make_tasks(backend, HISTORY // 10, status=TaskStatus.FAILED, workflow="history")
    make_tasks(backend, 200, status=TaskStatus.PENDING, workflow="three-steps")
    with connections[backend].cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE {Task._meta.db_table}")
        cursor.fetchall()
    return backend


def uses(found: str, index: str) -> bool:
    return f'"key": "{index}"' in found


def test_the_claim_reads_the_due_index_and_skips_locked_rows(history):
    query = sql.CLAIM_PICK_MYSQL.format(table=Task._meta.db_table, workflows="%s")
    assert query.strip().endswith("FOR UPDATE SKIP LOCKED")
    with connections[history].cursor() as cursor:
        cursor.execute(f"EXPLAIN FORMAT=JSON {query}", ["three-steps", 1])
        found = cursor.fetchone()[0]
    assert uses(found, "salvador_task_due"), found
    assert "filesort" not in found, found  # the index gives the order too


def test_the_reaper_reads_the_lease_index(history):
    found = plan(history, Task.objects.using(history).expired_leases().values("id"))
    assert uses(found, "salvador_task_lease"), found


def test_the_timer_loop_reads_the_timers_index(history):
    waiting = Task.objects.using(history).filter(status=TaskStatus.WAITING, wake_at__lte=Now())
    found = plan(history, waiting.order_by("wake_at").values("id")[:10])
    assert uses(found, "salvador_task_timers"), found


def test_the_admins_failed_list_reads_the_failures_index(history):
    failed = Task.objects.using(history).failed().order_by("-finished_at")[:100]
    found = plan(history, failed)
    assert uses(found, "salvador_task_failures") or uses(found, "salvador_task_triage"), found


def test_the_admins_status_filter_reads_the_triage_index(history):
    pending = Task.objects.using(history).filter(status=TaskStatus.PENDING)
    found = plan(history, pending.order_by("-created_at")[:100])
    assert uses(found, "salvador_task_triage") or uses(found, "salvador_task_due"), found


def test_the_schedule_tick_and_the_undelivered_signals_read_their_indexes(history):
    due = Schedule.objects.using(history).filter(active=True, paused=False, next_run_at__lte=Now())
    assert uses(plan(history, due.order_by("next_run_at")[:10]), "salvador_schedule_due")
    undelivered = Signal.objects.using(history).filter(
        task_id="0" * 32, name="go", consumed_at__isnull=True
    )
    found = plan(history, undelivered.order_by("id")[:1])
    assert uses(found, "salvador_signal_undelivered"), found
