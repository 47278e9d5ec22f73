"""A worker whose database goes away stops working on its tasks, then recovers.

The worker runs against a private PostgreSQL server (``benchmarks.faults.servers``),
which the test stops for longer than a lease and starts again; the shared server
is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from benchmarks.faults.servers import PostgresServer, postgres_binaries
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "outage"
LEASE_SECONDS = 2.0


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    if postgres_binaries() is None:
        pytest.fail("no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin")
    server = PostgresServer()
    server.start()
    server.create_database(DATABASE)
    yield server
    server.destroy()


def environment(server: PostgresServer) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SALVADOR_TEST_USE_TEST_DATABASES": "1",
        "SALVADOR_TEST_DATABASE": "postgres",
        "SALVADOR_TEST_PG_PORT": str(server.port),
        "SALVADOR_TEST_PG_TEST_NAME": DATABASE,
        "SALVADOR_TEST_QUEUE": "database",
        "SALVADOR_TEST_LEASE_SECONDS": str(LEASE_SECONDS),
        "SALVADOR_TEST_SWEEP_INTERVAL": "0.5",
        "SALVADOR_LOG_LEVEL": "INFO",
    }


def django(env: dict[str, str], *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def task_row(server: PostgresServer, task_id: str) -> tuple[str, int, str | None]:
    with psycopg.connect(
        host="127.0.0.1", port=server.port, user="postgres", dbname=DATABASE
    ) as connection:
        row = connection.execute(
            "SELECT status, step, claimed_by FROM salvador_task WHERE id = %s", [task_id]
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def starts(log: Path) -> list[tuple[int, str, float]]:
    """(step, claim token, time) of each step start the workflow logged."""
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(int(step), token, float(at)) for step, token, at in lines]


@pytest.mark.slow
def test_a_worker_cut_off_from_its_database_stops_its_tasks_and_recovers(
    server: PostgresServer, tmp_path: Path
) -> None:
    env = environment(server)
    django(env, "migrate", "--database", "postgres", "--verbosity", "0")
    log = tmp_path / "steps.log"
    task_id = django(
        env,
        "shell",
        "-c",
        "from salvador_django import submit; "
        f"print(submit('logged-steps', {{'log': '{log}', 'sleep': 0.3}}).id)",
    ).splitlines()[-1]  # the shell may print a line of its own first
    output = tmp_path / "worker.log"
    with output.open("wb") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "django", "runworkflows", "--concurrency", "2"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: len(starts(log)) >= 3, timeout=30)
        first_token = starts(log)[0][1]
        server.stop("immediate")
        gone = time.time()
        time.sleep(LEASE_SECONDS * 2.5)  # heartbeats fail for well over a lease
        outage = starts(log)
        server.start()

        # The claim stopped: at most the step in flight when the database went away
        # finished; no step of that claim started during or after the outage.
        assert all(at < gone for _, token, at in outage if token == first_token), outage
        assert worker.poll() is None, output.read_text()

        # Once the database is back, the lease is reaped and the task finishes.
        wait_until(lambda: task_row(server, task_id)[0] == "completed", timeout=60)
        steps = [step for step, _, _ in starts(log)]
        # Every step once, in order; the one in flight at the outage may have run twice.
        assert sorted(set(steps)) == list(range(10))
        assert steps == sorted(steps)
        assert len(steps) <= 11
        runs = starts(log)
        later_tokens = {token for _, token, at in runs if at > gone}
        assert first_token not in later_tokens
        assert "cannot take tasks" in output.read_text()  # it noticed, and kept trying
        assert worker.poll() is None  # it worked through the outage
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
