"""LISTEN/NOTIFY behind PgBouncer in transaction mode: the worker warns once and polls.

A private ``pgbouncer`` (Debian's package) runs in front of the PostgreSQL test
database. There ``LISTEN`` succeeds, but notifications never reach the listening
client, which only the listener's probe can tell.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connections

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from salvador_django.queues import get_queue
from salvador_django.queues.database import CHANNEL, DatabaseQueue, WakeUp, _Listener
from tests.support.processes import kill_group, start_in_group
from tests.support.servers import free_port, user_exists
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.only_backend("postgres")]

WARNING = "LISTEN/NOTIFY does not reach this worker"


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found is None and os.access("/usr/sbin/pgbouncer", os.X_OK):  # not on a user's PATH
        found = "/usr/sbin/pgbouncer"
    return found


class PgBouncer:
    """``pgbouncer`` in transaction mode on a free loopback port, in front of ``database``."""

    def __init__(self, binary: str, directory: Path, database: dict[str, Any]) -> None:
        self.port = free_port()
        self.database = database
        self.log_path = directory / "pgbouncer.log"
        auth_file = directory / "users.txt"
        auth_file.write_text(f'"{database["USER"]}" ""\n')
        config = directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={database['HOST']} port={database['PORT']}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {auth_file}\n"
            f"admin_users = {database['USER']}\npool_mode = transaction\n"
        )
        command = [binary, str(config)]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root; it reads the config first
            command[1:1] = ["-u", "postgres" if user_exists("postgres") else "nobody"]
        with self.log_path.open("wb") as log:
            self.process = start_in_group(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.connect("pgbouncer").close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def connect(self, dbname: str) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.database["USER"],
            dbname=dbname,
            autocommit=True,
        )

    def clients(self) -> list[str]:
        """The databases of the clients connected to PgBouncer (but this admin console)."""
        with self.connect("pgbouncer") as console:
            cursor = console.execute("SHOW CLIENTS")
            columns = [c.name for c in cursor.description or []]
            rows = cursor.fetchall()
        database = columns.index("database")
        return [row[database] for row in rows if row[database] != "pgbouncer"]

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout=10)
        finally:
            kill_group(self.process)


@pytest.fixture
def pgbouncer(backend, tmp_path) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        if os.environ.get("SALVADOR_TEST_REQUIRE_SERVICES"):
            pytest.fail("pgbouncer is not installed and SALVADOR_TEST_REQUIRE_SERVICES is set")
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    bouncer = PgBouncer(binary, tmp_path, connections[backend].settings_dict)
    yield bouncer
    bouncer.stop()


@pytest.fixture
def pgbouncer_alias(pgbouncer, backend) -> Iterator[str]:
    """A database alias for the test database, reached through PgBouncer."""
    alias = "through-pgbouncer"
    settings_dict = connections[backend].settings_dict
    options = {k: v for k, v in settings_dict["OPTIONS"].items() if k != "prepare_threshold"}
    connections.settings[alias] = {**settings_dict, "PORT": str(pgbouncer.port), "OPTIONS": options}
    yield alias
    del connections.settings[alias]


def status_of(alias: str, task: Task) -> str:
    return Task.objects.using(alias).get(id=task.id).status


def test_behind_pgbouncer_an_idle_worker_warns_once_and_polls(backend, pgbouncer, start_worker):
    worker = start_worker(
        "--concurrency", "1", "--poll-interval", "1", SALVADOR_TEST_PG_PORT=str(pgbouncer.port),
        SALVADOR_TEST_PG_PREPARE="",  # a transaction-pooling proxy: no prepared statements
    )  # fmt: skip
    worker.wait_for_output(WARNING)  # the first idle wait started the listener; it probed
    # Idle and polling now: the listener's probe ran in the worker's first idle wait.
    assert "idle workers poll every POLL_INTERVAL (1s)" in worker.output()

    task = submit("three-steps", {})  # its NOTIFY goes to PostgreSQL, and nowhere further
    submitted = time.monotonic()
    wait_until(lambda: status_of(backend, task) == TaskStatus.COMPLETED, timeout=10)
    assert time.monotonic() - submitted < 1 + 1.5  # one poll interval, then three short steps

    time.sleep(2.5)  # more idle waits: the listener is not started again
    assert worker.output().count(WARNING) == 1, worker.output()
    assert "cannot LISTEN" not in worker.output()
    assert worker.process.poll() is None


def test_behind_pgbouncer_the_listener_stops_and_closes_its_connections(
    pgbouncer, pgbouncer_alias, caplog
):
    listener = _Listener(pgbouncer_alias, WakeUp(), poll_interval=0.5)
    listener.start()
    listener.join(timeout=10)  # the probe waits 2 s, then the thread ends

    assert not listener.is_alive()
    assert not listener.listening.is_set()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert WARNING in warnings[0]
    assert "transaction-pooling proxy such as PgBouncer" in warnings[0]
    assert "every POLL_INTERVAL (0.5s)" in warnings[0]
    assert pgbouncer.clients() == []  # neither the LISTEN connection nor the probe's is left


def test_directly_on_postgresql_the_probe_arrives_and_wakes_nobody(backend, caplog):
    queue = get_queue()
    assert isinstance(queue, DatabaseQueue)
    assert queue.claim(["three-steps"], 0.01, token="t", lease_seconds=60) == []
    listener = queue._listener
    assert listener is not None
    assert listener.listening.wait(timeout=10)  # set once the probe came back
    seen = queue.wakeup.generation  # the listener's own probe woke nobody

    with connections[backend].cursor() as cursor:  # another worker's probe, then a real task
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, "salvador-probe:elsewhere"])
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, "three-steps"])
    wait_until(lambda: queue.wakeup.generation != seen, timeout=5)
    time.sleep(0.3)
    assert queue.wakeup.generation == seen + 1

    assert listener.is_alive()
    assert listener.listening.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
