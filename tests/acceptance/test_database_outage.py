"""A worker whose database goes away stops working on its tasks, then recovers.

The worker runs against a private PostgreSQL server (``tests.support.servers``),
which the test stops for longer than a lease and starts again; the shared server
is never touched.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.processes import run_in_group
from tests.support.servers import PostgresServer, require_private_postgres
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "outage"
LEASE_SECONDS = 2.0


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    require_private_postgres()
    server = PostgresServer()
    server.start()
    server.create_database(DATABASE)
    yield server
    server.destroy()


def pointed_at(server: PostgresServer) -> dict[str, str]:
    """The variables that point ``tests.settings``' ``postgres`` alias at ``server``."""
    return {
        "SALVADOR_TEST_USE_TEST_DATABASES": "1",
        "SALVADOR_TEST_DATABASE": "postgres",
        "SALVADOR_TEST_PG_PORT": str(server.port),
        "SALVADOR_TEST_PG_TEST_NAME": DATABASE,
    }


def django(server: PostgresServer, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    run = run_in_group(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT, env={**env, **pointed_at(server)}, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def task_status(server: PostgresServer, task_id: str) -> str:
    with psycopg.connect(
        host="127.0.0.1", port=server.port, user="postgres", dbname=DATABASE
    ) as connection:
        row = connection.execute(
            "SELECT status FROM salvador_task WHERE id = %s", [task_id]
        ).fetchone()
    assert row is not None
    return str(row[0])


def starts(log: Path) -> list[tuple[int, str, float]]:
    """(step, claim token, time) of each step start the workflow logged."""
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(int(step), token, float(at)) for step, token, at in lines]


def submit_logged_steps(server: PostgresServer, log: Path, *, sleep: float) -> str:
    """Migrate the server's database and submit a ``logged-steps`` task; its id."""
    django(server, "migrate", "--database", "postgres", "--verbosity", "0")
    return django(
        server,
        "shell",
        "-c",
        "from salvador_django import submit; "
        f"print(submit('logged-steps', {{'log': '{log}', 'sleep': {sleep}}}).id)",
    ).splitlines()[-1]  # the shell may print a line of its own first


@pytest.mark.slow
@pytest.mark.only_backend("postgres")
def test_a_worker_cut_off_from_its_database_stops_its_tasks_and_recovers(
    backend: str, server: PostgresServer, start_worker: Any, tmp_path: Path
) -> None:
    log = tmp_path / "steps.log"
    task_id = submit_logged_steps(server, log, sleep=0.3)
    worker = start_worker(
        "--concurrency", "2", lease_seconds=LEASE_SECONDS, sweep_interval=0.5,
        **pointed_at(server),
    )  # fmt: skip
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
    assert worker.process.poll() is None, worker.output()

    # Once the database is back, the lease is reaped and the task finishes.
    wait_until(lambda: task_status(server, task_id) == "completed", timeout=60)
    runs = starts(log)
    steps = [step for step, _, _ in runs]
    # Every step once, in order; the one in flight at the outage may have run twice.
    assert sorted(set(steps)) == list(range(10))
    assert steps == sorted(steps)
    assert len(steps) <= 11
    assert first_token not in {token for _, token, at in runs if at > gone}
    assert "cannot take tasks" in worker.output()  # it noticed, and kept trying
    assert worker.process.poll() is None  # it worked through the outage
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0


@pytest.mark.slow
@pytest.mark.only_backend("postgres")
def test_an_outage_shorter_than_the_lease_replays_no_step(
    backend: str, server: PostgresServer, start_worker: Any, tmp_path: Path
) -> None:
    """A step that ends while the database is down has its checkpoint tried again."""
    log = tmp_path / "steps.log"
    task_id = submit_logged_steps(server, log, sleep=1.0)
    worker = start_worker("--concurrency", "1", lease_seconds=30, **pointed_at(server))
    wait_until(lambda: len(starts(log)) >= 2, timeout=30)
    server.stop("immediate")  # step 1 is running: it ends during the outage
    time.sleep(3)
    server.start()

    wait_until(lambda: task_status(server, task_id) == "completed", timeout=60)
    runs = starts(log)
    assert [step for step, _, _ in runs] == list(range(10)), runs  # each step once
    assert len({token for _, token, _ in runs}) == 1  # one claim: nothing was reaped
    assert "trying again while its lease holds" in worker.output()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
