"""The gauges read from the tasks table, on SQLite and PostgreSQL, and the metrics/ view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client import CollectorRegistry

from salvador_django import metrics, signals, submit
from salvador_django.metrics import counts
from salvador_django.metrics.gauges import DatabaseGauges
from salvador_django.metrics.recorder import Metrics
from salvador_django.models import Task
from salvador_django.status import UNFINISHED, TaskStatus
from salvador_django.testing import run_until_idle
from tests.factories import TaskFactory
from tests.support.waiting import wait_until


@pytest.fixture
def gauges(backend):
    collector = DatabaseGauges(backend)
    registry = CollectorRegistry()
    registry.register(collector)
    return registry, collector


def read(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_unfinished_tasks_are_counted_by_workflow_and_status(backend, gauges):
    registry, _ = gauges
    now = timezone.now()
    for _ in range(3):
        TaskFactory(run_after=now - timedelta(seconds=5))
    TaskFactory(run_after=now + timedelta(hours=1))  # pending, not due yet
    TaskFactory(running=True)
    TaskFactory(status=TaskStatus.WAITING, workflow="flaky")
    TaskFactory(status=TaskStatus.PAUSED, workflow="flaky")
    TaskFactory(completed=True)
    TaskFactory(cancelled=True)
    assert read(registry, "salvador_tasks", workflow="three-steps", status="pending") == 4
    assert read(registry, "salvador_tasks", workflow="three-steps", status="running") == 1
    assert read(registry, "salvador_tasks", workflow="three-steps", status="waiting") == 0
    assert read(registry, "salvador_tasks", workflow="flaky", status="waiting") == 1
    assert read(registry, "salvador_tasks", workflow="flaky", status="paused") == 1
    assert read(registry, "salvador_tasks", workflow="flaky", status="pending") == 0
    # finished tasks are no status of this gauge
    assert read(registry, "salvador_tasks", workflow="three-steps", status="completed") is None


def test_a_registered_workflow_without_tasks_shows_zeros(backend, gauges):
    registry, _ = gauges
    assert read(registry, "salvador_tasks", workflow="breaks-second", status="pending") == 0
    assert read(registry, "salvador_tasks_failed", workflow="breaks-second") == 0
    assert read(registry, "salvador_oldest_due_task_age_seconds", workflow="breaks-second") == 0


def test_a_workflow_found_only_in_the_table_is_shown(backend, gauges):
    registry, _ = gauges
    TaskFactory(workflow="retired-long-ago", failed=True)
    assert read(registry, "salvador_tasks_failed", workflow="retired-long-ago") == 1
    assert read(registry, "salvador_tasks", workflow="retired-long-ago", status="pending") == 0


def test_the_oldest_due_task_age_is_that_of_the_longest_due_pending_task(backend, gauges):
    registry, _ = gauges
    now = timezone.now()
    TaskFactory(run_after=now - timedelta(seconds=30))
    TaskFactory(run_after=now - timedelta(seconds=10))
    TaskFactory(run_after=now - timedelta(hours=2), running=True)  # taken: not waiting
    TaskFactory(run_after=now + timedelta(hours=1), workflow="flaky")  # not due
    age = read(registry, "salvador_oldest_due_task_age_seconds", workflow="three-steps")
    assert 30 <= age < 3600
    assert read(registry, "salvador_oldest_due_task_age_seconds", workflow="flaky") == 0


def test_failed_tasks_are_counted_among_the_most_recent_failures(backend, gauges, monkeypatch):
    registry, _ = gauges
    now = timezone.now()
    TaskFactory(failed=True, workflow="flaky", finished_at=now - timedelta(days=3))
    for minutes in (1, 2, 3):
        TaskFactory(failed=True, finished_at=now - timedelta(minutes=minutes))
    assert read(registry, "salvador_tasks_failed", workflow="three-steps") == 3
    assert read(registry, "salvador_tasks_failed", workflow="flaky") == 1
    monkeypatch.setattr(counts, "FAILED_COUNT_CAP", 2)
    capped = counts.read_counts(backend)
    assert capped.failed["three-steps"] == 2  # a lower bound at the cap
    assert capped.failed["flaky"] == 0


def test_a_reading_serves_every_scrape_until_it_is_old(backend, gauges):
    registry, collector = gauges
    TaskFactory()
    with CaptureQueriesContext(connections[backend]) as first:
        assert read(registry, "salvador_tasks", workflow="three-steps", status="pending") == 1
    assert len(first.captured_queries) == 2
    TaskFactory()
    with CaptureQueriesContext(connections[backend]) as cached:
        for _ in range(10):
            assert read(registry, "salvador_tasks", workflow="three-steps", status="pending") == 1
    assert cached.captured_queries == []
    collector.invalidate()
    assert read(registry, "salvador_tasks", workflow="three-steps", status="pending") == 2


def test_the_counts_read_the_partial_indexes_of_unfinished_and_failed_tasks(backend):
    """Not every task: at 1,000,000 tasks, a scan of them all took 1 s on SQLite, 180 ms
    on PostgreSQL; through these indexes, 37 ms and 15 ms. (On MySQL/MariaDB, with
    a tiny table, the plan lists the indexes it could use.)"""
    TaskFactory.create_batch(3)
    with CaptureQueriesContext(connections[backend]) as queries:
        counts.read_counts(backend)
    unfinished, failed = (query["sql"] for query in queries.captured_queries)
    vendor = connections[backend].vendor
    postgres = vendor == "postgresql"
    explain = {"postgresql": "EXPLAIN", "sqlite": "EXPLAIN QUERY PLAN", "mysql": "EXPLAIN"}
    with connections[backend].cursor() as cursor:
        if postgres:
            cursor.execute("SET enable_seqscan = off")  # a tiny table: ask what it could use
        try:
            plans = []
            for query in (unfinished, failed):
                cursor.execute(f"{explain[vendor]} {query}")
                plans.append(" ".join(str(row) for row in cursor.fetchall()))
        finally:
            if postgres:
                cursor.execute("RESET enable_seqscan")
    assert "salvador_task_triage" in plans[0]
    assert "salvador_task_failures" in plans[1]


@pytest.fixture
def enabled():
    """This process's metrics on, on a registry of the test's own."""
    recorded = metrics.enable(CollectorRegistry())
    yield recorded
    metrics.disable()


def test_the_view_is_not_found_while_metrics_are_off(backend, client):
    assert client.get(reverse("salvador_django:metrics")).status_code == 404


def test_the_view_serves_the_gauges_and_this_process_counters(backend, client, enabled):
    TaskFactory(run_after=timezone.now() - timedelta(seconds=5))
    signals.send(signals.task_submitted, Task, task=TaskFactory.build())
    response = client.get(reverse("salvador_django:metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"].startswith("max-age=0")
    text = response.content.decode()
    assert 'salvador_tasks{status="pending",workflow="three-steps"} 1.0' in text
    assert 'salvador_tasks_submitted_total{workflow="three-steps"} 1.0' in text
    assert "salvador_oldest_due_task_age_seconds" in text


def test_the_view_answers_openmetrics_when_asked(backend, client, enabled):
    response = client.get(
        reverse("salvador_django:metrics"), headers={"accept": "application/openmetrics-text"}
    )
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


def test_a_worker_run_feeds_the_counters_and_histograms(backend):
    """The engine's signals reach the receivers: a retried step, a failure, a completion."""
    recorded = Metrics(CollectorRegistry(), gauges=False)
    recorded.connect()
    try:
        submit("flaky", {"succeed_on": 2})
        submit("breaks-second", {})
        while run_until_idle():
            # the flaky step's retry is due 50 ms later
            wait_until(lambda: Task.objects.using(backend).due().exists() or all_finished(backend))
    finally:
        recorded.disconnect()

    def value(name: str, **labels: str) -> float | None:
        found: float | None = recorded.registry.get_sample_value(name, labels)
        return found

    assert value("salvador_tasks_submitted_total", workflow="flaky") == 1
    assert value("salvador_tasks_finished_total", workflow="flaky", status="completed") == 1
    failed = value("salvador_tasks_finished_total", workflow="breaks-second", status="failed")
    assert failed == 1
    attempts = "salvador_step_attempts_total"
    assert value(attempts, workflow="flaky", step="unreliable", outcome="retrying") == 1
    assert value(attempts, workflow="flaky", step="unreliable", outcome="completed") == 1
    assert value(attempts, workflow="breaks-second", step="second", outcome="failed") == 1
    duration = "salvador_step_duration_seconds_count"
    assert value(duration, workflow="flaky", step="unreliable") == 2
    assert value("salvador_task_start_latency_seconds_count", workflow="flaky") == 1
    assert value("salvador_task_start_latency_seconds_count", workflow="breaks-second") == 1


def all_finished(backend: str) -> bool:
    return not Task.objects.using(backend).filter(status__in=UNFINISHED).exists()
