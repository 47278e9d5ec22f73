"""The metrics' receivers, read through a registry of each test's own; metrics off cost nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from salvador_django import metrics, signals
from salvador_django.conf import setting_problems
from salvador_django.metrics.recorder import Metrics
from salvador_django.models import Task
from tests.factories import TaskFactory

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "salvador.json"


@pytest.fixture
def recorded():
    """Metrics of this test alone, counting until it ends (no database gauges: no database)."""
    instance = Metrics(CollectorRegistry(), gauges=False)
    instance.connect()
    yield instance
    instance.disconnect()


def value(recorded: Metrics, name: str, **labels: str) -> float | None:
    return recorded.registry.get_sample_value(name, labels)


def test_a_submitted_task_is_counted_by_workflow(recorded):
    for workflow in ("three-steps", "three-steps", "flaky"):
        signals.send(signals.task_submitted, Task, task=TaskFactory.build(workflow=workflow))
    assert value(recorded, "salvador_tasks_submitted_total", workflow="three-steps") == 2
    assert value(recorded, "salvador_tasks_submitted_total", workflow="flaky") == 1


def test_a_started_task_observes_its_wait_from_creation_to_first_claim(recorded):
    created = datetime(2025, 1, 1, 12, tzinfo=UTC)
    task = TaskFactory.build(created_at=created, started_at=created + timedelta(seconds=2.5))
    signals.send(signals.task_started, Task, task=task, worker="host:1")
    labels = {"workflow": "three-steps"}
    assert value(recorded, "salvador_task_start_latency_seconds_count", **labels) == 1
    assert value(recorded, "salvador_task_start_latency_seconds_sum", **labels) == 2.5
    assert value(recorded, "salvador_task_start_latency_seconds_bucket", le="2.5", **labels) == 1
    assert value(recorded, "salvador_task_start_latency_seconds_bucket", le="1.0", **labels) == 0


def test_a_start_without_times_observes_nothing(recorded):
    """An instance whose times the sender did not load (unsaved defaults) is skipped."""
    task = TaskFactory.build(started_at=None)
    signals.send(signals.task_started, Task, task=task, worker="host:1")
    count = value(recorded, "salvador_task_start_latency_seconds_count", workflow="three-steps")
    assert count is None


def test_step_attempts_are_counted_by_outcome_and_timed(recorded):
    task = TaskFactory.build(workflow="flaky")
    common = {"task": task, "step": "unreliable", "worker": "host:1", "error": ""}
    runs = [(1, "retrying", 0.2), (2, "retrying", 0.3), (3, "completed", 4.0)]
    for attempt, outcome, duration in runs:
        signals.send(
            signals.step_finished,
            Task,
            attempt=attempt,
            outcome=outcome,
            duration=duration,
            **common,
        )
    signals.send(
        signals.step_finished, Task, **{**common, "step": "after"}, attempt=1, outcome="skipped",
        duration=0.0,
    )  # fmt: skip
    attempts = "salvador_step_attempts_total"
    assert value(recorded, attempts, workflow="flaky", step="unreliable", outcome="retrying") == 2
    assert value(recorded, attempts, workflow="flaky", step="unreliable", outcome="completed") == 1
    assert value(recorded, attempts, workflow="flaky", step="after", outcome="skipped") == 1
    step = {"workflow": "flaky", "step": "unreliable"}
    assert value(recorded, "salvador_step_duration_seconds_count", **step) == 3
    assert value(recorded, "salvador_step_duration_seconds_sum", **step) == pytest.approx(4.5)
    assert value(recorded, "salvador_step_duration_seconds_bucket", le="0.25", **step) == 1
    assert value(recorded, "salvador_step_duration_seconds_bucket", le="5.0", **step) == 3
    # a skipped step ran nothing: no duration
    skipped = value(
        recorded, "salvador_step_duration_seconds_count", workflow="flaky", step="after"
    )
    assert skipped is None


def test_finished_tasks_are_counted_by_status(recorded):
    for status in ("completed", "completed", "failed", "cancelled"):
        signals.send(signals.task_finished, Task, task=TaskFactory.build(), status=status)
    finished = "salvador_tasks_finished_total"
    assert value(recorded, finished, workflow="three-steps", status="completed") == 2
    assert value(recorded, finished, workflow="three-steps", status="failed") == 1
    assert value(recorded, finished, workflow="three-steps", status="cancelled") == 1


def test_disconnected_metrics_count_nothing_more(recorded):
    signals.send(signals.task_submitted, Task, task=TaskFactory.build())
    recorded.disconnect()
    signals.send(signals.task_submitted, Task, task=TaskFactory.build())
    assert value(recorded, "salvador_tasks_submitted_total", workflow="three-steps") == 1
    assert not any(signals.listened(signal) for signal in signals.SIGNALS)


def test_two_instances_count_apart(recorded):
    other = Metrics(CollectorRegistry(), gauges=False)
    signals.send(signals.task_submitted, Task, task=TaskFactory.build())  # other not connected
    other.connect()
    try:
        signals.send(signals.task_submitted, Task, task=TaskFactory.build())
    finally:
        other.disconnect()
    assert value(recorded, "salvador_tasks_submitted_total", workflow="three-steps") == 2
    assert value(other, "salvador_tasks_submitted_total", workflow="three-steps") == 1


def test_enable_is_idempotent_and_disable_disconnects_and_unregisters():
    registry = CollectorRegistry()
    assert metrics.active() is None
    enabled = metrics.enable(registry)
    try:
        assert metrics.enable(registry) is enabled
        assert all(signals.listened(s) for s in (signals.task_submitted, signals.task_finished))
        assert "salvador_tasks_submitted" in registry._names_to_collectors
    finally:
        metrics.disable()
    assert metrics.active() is None
    assert not any(signals.listened(signal) for signal in signals.SIGNALS)
    assert registry._names_to_collectors == {}
    metrics.disable()  # twice: nothing


def test_registering_the_database_gauges_reads_nothing():
    """describe() names them: registering does not query (this unit test has no database)."""
    registry = CollectorRegistry()
    Metrics(registry)
    names = set(registry._names_to_collectors)
    expected = {"salvador_tasks", "salvador_tasks_failed", "salvador_oldest_due_task_age_seconds"}
    assert names >= expected


def test_the_setting_is_a_bool():
    assert setting_problems({"METRICS": True}) == []
    assert setting_problems({"METRICS": "yes"}) == [
        ("salvador.E003", "SALVADOR['METRICS'] must be True or False, not 'yes'.")
    ]


def test_metrics_off_import_nothing_and_connect_nothing():
    """A project that never enables metrics does not even import prometheus_client."""
    script = (
        "import sys, django; django.setup();"
        "from salvador_django import signals, metrics, urls;"
        "from salvador_django.management.commands import runworkflows;"
        "print('prometheus_client' in sys.modules,"
        " any(signals.listened(s) for s in signals.SIGNALS), metrics.active())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["False", "False", "None"]


def metric_names_in_code() -> set[str]:
    """Every series name a scrape can show (counters' _total, histograms' _bucket...),
    as the registry knows them (from describe(): no database read)."""
    registry = CollectorRegistry()
    Metrics(registry)
    return set(registry._names_to_collectors)


def test_the_grafana_dashboard_is_json_on_the_names_of_the_code():
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert expressions
    used = {name for expr in expressions for name in re.findall(r"\bsalvador_[a-z_]+", expr)}
    assert used <= metric_names_in_code(), used - metric_names_in_code()
    # every metric is on the dashboard
    family = re.compile(r"_(total|bucket|sum|count|created)$")
    assert {family.sub("", n) for n in used} == {family.sub("", n) for n in metric_names_in_code()}
