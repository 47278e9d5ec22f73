"""``benchmarks/chaos.py --quick``: the fault-injection run passes every check, those
of its waiting workflow (signals, timers, pauses), of its fan-out workflow (children
started once per key, parents completed with all their results) and of its diamond
workflow (parallel branches killed and paused: every step once, each effect once, the
join saw every branch), of its scheduled workflow (schedules ticked by the workers
through the faults: one task per tick, every tick missed explained) and of its traced
workflow (every step's span in its task's one trace; the workers table at the end)
and of its Django tasks (enqueued through ``django.tasks``, retried, every result
SUCCESSFUL and agreeing with the attempts recorded) included.

Each run starts its own PostgreSQL, MariaDB and Redis servers (see ``benchmarks/faults``), so
the shared services stay up. The run's own checks are tested in
``tests/unit/test_chaos_checks.py``; here the whole run must report PASS.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.support.processes import run_in_group
from tests.support.servers import require_private_mariadb, require_private_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("queue", "db"),
    [
        ("database", "postgres"),
        ("redis", "postgres"),
        ("database", "sqlite"),
        ("database", "mariadb"),
    ],
)
def test_quick_fault_injection_run_passes(tmp_path: Path, queue: str, db: str) -> None:
    if db == "postgres":
        require_private_postgres()
    if db == "mariadb":
        require_private_mariadb()  # restarted under load: never the shared server
    summary = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "benchmarks/chaos.py", "--quick", "--queue", queue, "--db", db,
               "--json", str(summary)]  # fmt: skip
    run = run_in_group(command, cwd=ROOT, env=env, timeout=600)  # its workers die with it
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    result = json.loads(summary.read_text())
    assert result["passed"]
    assert result["problems"] == []
    assert result["statuses"] == {"completed": 1000}
    assert result["faults"]["kill"] >= 5
    assert result["faults"]["stop"] >= 1
    if db in ("postgres", "mariadb"):
        assert result["faults"][f"{db}-restart"] == 1
    if queue == "redis":
        assert result["faults"]["redis-restart"] >= 1
        assert result["faults"]["redis-flush"] >= 1
        assert result["faults"]["garbage"] >= 2  # junk in every key of the queue
    waits = result["waits"]  # the waiting workflow, run alongside
    assert waits["tasks"] == 100
    assert sum(waits["signals"].values()) == 400  # each consumed once, by its wait
    assert set(waits["signals"]) == {"before its wait", "while waited for", "after a timeout"}
    assert waits["timers"]["count"] >= 100
    assert waits["stuck"] == 0
    fan_out = result["fan_out"]  # parents of 20 children each, run alongside
    assert fan_out["parents"] == 25
    assert fan_out["parents_by_status"] == {"completed": 25}
    assert fan_out["children_by_status"] == {"completed": 500}
    assert fan_out["wrong_counts_seen"] == 0
    assert fan_out["problems"] == 0
    diamond = result["diamond"]  # start, four branches at the same time, a join
    assert diamond["tasks"] == 100
    assert diamond["by_status"] == {"completed": 100}
    assert diamond["step_runs"] == 600
    assert diamond["effects"] == 400  # of its four atomic steps
    assert diamond["overlapping_branches"] > 0
    assert sum(diamond["strikes"].values()) >= 1  # a worker hit amid parallel branches
    assert diamond["problems"] == 0
    scheduled = result["scheduled"]  # three schedules every second, one every even second
    assert set(scheduled["schedules"]) == {"every-second-1", "every-second-2", "every-second-3",
                                           "even-seconds"}  # fmt: skip
    assert scheduled["tasks"] >= 40
    assert scheduled["by_status"] == {"completed": scheduled["tasks"]}
    assert scheduled["tasks"] + sum(scheduled["missed"].values()) == scheduled["ticks_expected"]
    assert "unexplained" not in scheduled["missed"]
    assert scheduled["problems"] == 0
    traced = result["traced"]  # spans exported by every process, the workers table
    assert traced["tasks"] == 100
    assert traced["by_status"] == {"completed": 100}
    assert traced["step_span_outcomes"]["completed"] >= 300 - sum(
        traced["completed_spans_missing"].values()
    )
    assert "unexplained" not in traced["completed_spans_missing"]
    assert traced["killed_rows_gone"] >= 1  # killed workers leave their rows, gone
    assert traced["problems"] == 0
    django_tasks = result["django_tasks"]  # enqueued through Django's API, some failing once
    assert django_tasks["tasks"] == 100
    assert django_tasks["results_by_status"] == {"SUCCESSFUL": 100}
    assert django_tasks["flaky"] >= 1
    assert "2" in django_tasks["results_by_attempts"]  # the flaky ones were retried
    assert "unexplained" not in django_tasks["duplicates"]
    assert django_tasks["problems"] == 0
    assert "PASS" in run.stdout
