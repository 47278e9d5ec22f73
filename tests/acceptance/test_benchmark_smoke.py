"""``benchmarks/run.py --quick --backends sqlite`` runs to the end, and a short run of
``--backends mariadb`` where MariaDB is reachable (figures are not tested)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.support.processes import run_in_group

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_sqlite_benchmark_runs_and_reports_every_section(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    run = run_in_group(  # its worker processes die with it
        [
            sys.executable,
            "benchmarks/run.py",
            "--quick",
            "--backends",
            "sqlite",
            "--json",
            str(results),
            "--charts",
            str(tmp_path / "charts"),
        ],
        cwd=ROOT,
        env=env,
        timeout=420,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "targets:" in run.stdout
    report = json.loads(results.read_text())
    sqlite = report["backends"]["sqlite"]
    assert sqlite["errors"] == []
    assert sqlite["throughput"]["by_status"] == {"completed": 500}
    assert sqlite["throughput_processes"]["by_status"] == {"completed": 500}
    assert len(sqlite["latency"]["start_samples_ms"]) == 50
    assert set(sqlite["scale"]) == {"0", "10000"}
    assert sqlite["memory_rss_mib"]["200"] > 0
    waits = sqlite["waits"]
    assert waits["raw_wakeup_ms"] is None  # SQLite workers poll: no wake-up to compare with
    assert len(waits["signal"]["samples_ms"]) == 20
    assert len(waits["timers"]["samples_ms"]) == 20
    assert waits["timers"]["lateness_ms"]["min"] >= 0  # no timer fired early
    assert set(waits["waiting"]) == {"0", "10000"}
    for level in waits["waiting"].values():
        assert level["claim_ms"]["p50"] > 0
        assert level["idle"]["statements_per_second"] > 0
        assert level["rss_mib"] > 0
    assert "waits: signals and timers" in run.stdout
    fan_out = sqlite["fan_out"]
    assert set(fan_out["sizes"]) == {"50", "150"}
    for n, size in fan_out["sizes"].items():
        assert size["children"] == int(n)
        assert size["fan_out_seconds"] > 0
        assert size["independent_seconds"] > 0
        assert len(size["resume_ms_runs"]) == 1
    assert len(fan_out["resume"]["resume_samples_ms"]) == 3
    assert fan_out["latency_children"] == 20
    assert "fan-out: a parent mapping N no-op children" in run.stdout
    chords = report.get("fan_out_peers", {})  # Celery's chord: only where Redis runs
    assert set(chords) <= {"celery-chord-prefork"}
    for chord in chords.values():
        assert chord["errors"] == []
        assert set(chord["fan_out"]["sizes"]) == {"50", "150"}
        assert len(chord["fan_out"]["resume"]["resume_samples_ms"]) == 3
    graph = sqlite["graph"]
    assert graph["steps_per_task"] == 6
    for pool in ("threads", "processes"):
        bursts = graph["bursts"][pool]
        for workflow in ("line", "diamond"):
            assert bursts[workflow]["by_status"] == {"completed": 200}
            assert bursts[workflow]["step_runs"] == 1200
            assert bursts[workflow]["steps_per_second"] > 0
        assert bursts["ratio"] > 0
        wide = graph["wide"][pool]
        assert len(wide["span_ms_runs"]) == 3
        assert wide["span_ms"]["median"] >= 100  # 8 steps of 100 ms at best side by side
    assert "graph: a diamond" in run.stdout
    schedules = sqlite["schedules"]
    assert set(schedules["sizes"]) == {"100", "10000"}
    for size in schedules["sizes"].values():
        assert (size["idle"]["statements"], size["idle"]["lookups"]) == (1, 1)  # none due
        assert size["timer_round"]["statements"] == 1
        assert set(size["due"]) == {"1", "100"}
        assert size["due"]["100"]["ticked"] == 100
        assert size["due"]["100"]["lookups"] == 1
    assert schedules["sizes"]["10000"]["idle"]["indexed"]  # the partial index of due ones
    assert schedules["sizes"]["10000"]["baseline"]["tasks"] == 100
    lateness = schedules["lateness"]
    assert lateness["ticks"] > 0
    assert lateness["ticked_twice"] == 0
    assert lateness["submitted_ms"]["min"] >= 0  # no tick submitted before it was due
    assert "schedules: tick rounds" in run.stdout
    django_tasks = sqlite["django_tasks"]  # SalvadorBackend against django-tasks-db's db_worker
    assert django_tasks["ours"]["throughput"]["by_status"] == {"completed": 500}
    assert django_tasks["theirs"]["throughput"]["by_status"] == {"SUCCESSFUL": 500}
    assert django_tasks["ratio"] > 0
    for side in ("ours", "theirs"):
        assert django_tasks[side]["latency"]["start_ms"]["n"] == 50
        assert django_tasks[side]["latency"]["start_ms"]["p50"] > 0
    assert "django-tasks: one-step Django tasks" in run.stdout
    observability = sqlite["observability"]  # off, all on, tracing only, metrics only
    for mode in ("off", "on", "tracing", "metrics"):
        assert observability[mode]["by_status"] == {"completed": 500}
    recorded = observability["on"]["recorded"]  # the "on" worker: a span and a count a step
    assert (recorded["spans"], recorded["attempts_counted"]) == (1500, 1500)
    assert observability["hooks"]["per_step_ns"] > 0
    assert observability["hooks_on"]["per_step_ns"] > observability["hooks"]["per_step_ns"]
    assert "observability: burst steps/s" in run.stdout
    charts = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert charts == ["benchmark-concurrency.png", "benchmark-latency-cdf.png"]


@pytest.mark.slow
@pytest.mark.mariadb
def test_mariadb_benchmark_runs_throughput_latency_and_scale(tmp_path: Path) -> None:
    from tests.conftest import chosen_backends, mariadb_missing

    if "mariadb" not in chosen_backends():
        pytest.skip("MariaDB is not among SALVADOR_TEST_BACKENDS")
    missing = mariadb_missing()
    if missing:
        if os.environ.get("SALVADOR_TEST_REQUIRE_SERVICES"):
            pytest.fail(f"{missing}, and SALVADOR_TEST_REQUIRE_SERVICES is set")
        pytest.skip(missing)
    results = tmp_path / "results.json"
    database = os.environ.get("SALVADOR_TEST_MYSQL_TEST_NAME", "salvador_test") + "_bench"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["SALVADOR_BENCH_MYSQL_NAME"] = database  # several runs may share the server
    for name, default in (("HOST", "127.0.0.1"), ("PORT", "3306"), ("USER", "root")):
        env[f"SALVADOR_BENCH_MYSQL_{name}"] = os.environ.get(f"SALVADOR_TEST_MYSQL_{name}", default)
    env["SALVADOR_BENCH_MYSQL_PASSWORD"] = os.environ.get("SALVADOR_TEST_MYSQL_PASSWORD", "")
    run = run_in_group(
        [
            sys.executable,
            "benchmarks/run.py",
            *("--backends", "mariadb", "--sections", "throughput,latency,scale"),
            *("--tasks", "100", "--repeat", "1", "--latency-samples", "10"),
            *("--history", "0,2000", "--json", str(results)),
        ],
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    mariadb = json.loads(results.read_text())["backends"]["mariadb"]
    assert mariadb["errors"] == []
    assert mariadb["throughput"]["by_status"] == {"completed": 100}
    assert mariadb["throughput_processes"]["by_status"] == {"completed": 100}
    assert mariadb["raw_commits_per_second"]["4"] > 0
    # InnoDB's transaction counters need the privilege to turn them on; else it says why.
    assert "commits_per_step" in mariadb["throughput"] or mariadb["commits_not_measured"]
    assert len(mariadb["latency"]["start_samples_ms"]) == 10
    assert mariadb["latency"]["poll_interval"] > 0  # no LISTEN/NOTIFY: its workers poll
    assert set(mariadb["scale"]) == {"0", "2000"}
    assert "MariaDB targets:" in run.stdout
    assert f"dropped the database {database!r}" in run.stdout
