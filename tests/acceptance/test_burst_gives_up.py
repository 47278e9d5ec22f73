"""``runworkflows --burst`` ends when its database or its queue stays unreachable.

A cron job or a CI step must end: after ``--give-up-after`` seconds of failing to
take tasks, the worker gives up with status 1 and a message that says why.
"""

from __future__ import annotations

import re
import socket

import pytest

pytestmark = pytest.mark.slow


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_database(backend: str, tmp_path) -> dict[str, str]:
    if backend == "postgres":
        return {"SALVADOR_TEST_PG_PORT": str(closed_port())}
    if backend == "mariadb":
        return {"SALVADOR_TEST_MYSQL_PORT": str(closed_port())}
    return {"SALVADOR_TEST_SQLITE_DIR": str(tmp_path / "no such directory")}


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_a_burst_gives_up_when_the_database_stays_down(backend, start_worker, tmp_path, pool):
    worker = start_worker(
        "--burst", "--give-up-after", "1", "--concurrency", "2", "--pool", pool,
        **unreachable_database(backend, tmp_path),
    )  # fmt: skip
    assert worker.wait(timeout=60) == 1, worker.output()
    output = worker.output()
    assert "CommandError: Gave up: " in output
    if pool == "threads":
        assert re.search(r"Gave up: cannot take tasks for \d+s \(--give-up-after 1\): ", output)
    else:
        assert "the database or the queue stayed unreachable for 1s" in output
        assert "giving up: cannot take tasks for " in output  # the child's own line


@pytest.mark.only_backend("sqlite")
def test_a_burst_gives_up_when_redis_stays_down(backend, start_worker):
    worker = start_worker(
        "--burst", "--give-up-after", "1",
        SALVADOR_TEST_QUEUE="redis",
        SALVADOR_TEST_REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
    )  # fmt: skip
    assert worker.wait(timeout=60) == 1, worker.output()
    output = worker.output()
    gave_up = r"Gave up: cannot take tasks for \d+s \(--give-up-after 1\): Redis unavailable"
    assert re.search(gave_up, output)


def test_give_up_after_is_checked(backend, start_worker):
    worker = start_worker("--burst", "--give-up-after", "inf")
    assert worker.wait(timeout=60) == 2, worker.output()
    assert "--give-up-after: must be at most 86400" in worker.output()
