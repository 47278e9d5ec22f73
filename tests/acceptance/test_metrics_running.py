"""``runworkflows --metrics-port``: a real worker scraped over HTTP, alone and as a pool."""

from __future__ import annotations

import re
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from tests.support.processes import ROOT, run_in_group, worker_environment
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Series:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, tuple(sorted(labels.items()))))


def all_completed(backend: str, tasks: list[Task]) -> bool:
    ids = [task.id for task in tasks]
    done = Task.objects.using(backend).filter(id__in=ids, status=TaskStatus.COMPLETED).count()
    return done == len(tasks)


def finished(port: int) -> float | None:
    series = scrape(port)
    return value(
        series, "salvador_tasks_finished_total", workflow="three-steps", status="completed"
    )


def test_a_worker_serves_its_counters_and_the_database_gauges(backend, start_worker):
    tasks = [submit("three-steps", {}) for _ in range(5)]
    submit("three-steps", {}, delay=3600)  # not due: stays pending
    port = free_port()
    worker = start_worker("--concurrency", "2", "--metrics-port", str(port))
    worker.wait_for_output(f"serving metrics on port {port}")
    wait_until(lambda: all_completed(backend, tasks), timeout=60)
    wait_until(lambda: finished(port) == 5, timeout=30)  # sent just after each commit
    series = scrape(port)
    attempts = "salvador_step_attempts_total"
    for step in ("first", "second", "third"):
        labels = {"workflow": "three-steps", "step": step}
        assert value(series, attempts, outcome="completed", **labels) == 5
        assert value(series, "salvador_step_duration_seconds_count", **labels) == 5
    latency = "salvador_task_start_latency_seconds_count"
    assert value(series, latency, workflow="three-steps") == 5
    # the gauges, read from the database (cached 15 s: the not yet due task is always there)
    assert value(series, "salvador_tasks", workflow="three-steps", status="pending") >= 1
    assert value(series, "salvador_tasks_failed", workflow="three-steps") == 0
    assert value(series, "salvador_oldest_due_task_age_seconds", workflow="three-steps") >= 0
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()


def test_a_port_in_use_fails_the_start_and_names_the_port(backend, settings, tmp_path):
    task = submit("three-steps", {})
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))  # where the worker binds
        blocker.listen()
        port = blocker.getsockname()[1]
        environment = worker_environment(
            backend, settings.SALVADOR, lease_seconds=60, sweep_interval=30
        )
        result = run_in_group(
            [
                sys.executable,
                "-m",
                "django",
                "runworkflows",
                "--burst",
                "--metrics-port",
                str(port),
            ],
            timeout=60,
            cwd=ROOT,
            env=environment,
        )
    assert result.returncode == 1, result.stderr
    assert f"CommandError: Cannot serve metrics on port {port}: it is already in use." in (
        result.stderr
    )
    # it stopped before any worker ran
    assert Task.objects.using(backend).get(id=task.id).status == TaskStatus.PENDING


@pytest.mark.parametrize("setting", ["", "1"], ids=["flag", "flag-and-setting"])
def test_a_pool_of_two_processes_serves_the_sum_of_its_children(backend, start_worker, setting):
    """With SALVADOR["METRICS"] too, the metrics made at start are made again, in files."""
    tasks = [submit("three-steps", {"sleep": {"second": 0.05}}) for _ in range(20)]
    port = free_port()
    pool = start_worker(
        "--pool", "processes", "--concurrency", "2", "--metrics-port", str(port),
        SALVADOR_TEST_METRICS=setting,
    )  # fmt: skip
    pool.wait_for_output(f"serving metrics on port {port}")
    directory = re.search(r"the pool's processes count in (\S+)\)", pool.output())
    assert directory is not None, pool.output()
    wait_until(lambda: all_completed(backend, tasks), timeout=60)
    workers = set(
        Task.objects.using(backend)
        .filter(id__in=[t.id for t in tasks])
        .values_list("step_runs__worker", flat=True)
    )
    assert len(workers) == 2  # both children did some of the work
    wait_until(lambda: finished(port) == 20, timeout=30)
    series = scrape(port)
    labels = {"workflow": "three-steps", "step": "second"}
    assert value(series, "salvador_step_attempts_total", outcome="completed", **labels) == 20
    assert value(series, "salvador_step_duration_seconds_count", **labels) == 20
    assert value(series, "salvador_task_start_latency_seconds_count", workflow="three-steps") == 20
    assert value(series, "salvador_tasks", workflow="three-steps", status="running") is not None
    # each child counted in a file of its own
    files = {path.name for path in Path(directory.group(1)).glob("counter_*.db")}
    assert len(files) >= 2, files
    pool.signal(signal.SIGTERM)
    assert pool.wait() == 0, pool.output()
    assert not Path(directory.group(1)).exists()  # removed at exit
