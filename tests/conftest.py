"""Fixtures shared by the suite.

Tests that take the ``backend`` fixture run once on SQLite, once on PostgreSQL and
once on MariaDB (or MySQL). When PostgreSQL is unreachable its runs are deselected and
MariaDB's are skipped, saying why, unless ``SALVADOR_TEST_REQUIRE_SERVICES`` is set, in
which case the session fails. ``SALVADOR_TEST_BACKENDS`` (``sqlite,postgres``…) runs
the tests on those backends only.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from copy import deepcopy

import pytest

from salvador_django.definitions import registry
from salvador_django.queues import reset_queues

BACKENDS = {"sqlite": "default", "postgres": "postgres", "mariadb": "mariadb"}
QUEUES = ["database", "redis"]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    return _reachable(
        os.environ.get("SALVADOR_TEST_PG_HOST", "127.0.0.1"),
        int(os.environ.get("SALVADOR_TEST_PG_PORT", "5432")),
    )


def mariadb_missing() -> str | None:
    """Why the MariaDB tests cannot run here, or None when they can."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return "mysqlclient is not installed (pip install -e '.[mysql]')"
    host = os.environ.get("SALVADOR_TEST_MYSQL_HOST", "127.0.0.1")
    port = int(os.environ.get("SALVADOR_TEST_MYSQL_PORT", "3306"))
    if not _reachable(host, port):
        return f"no MariaDB/MySQL server at {host}:{port}"
    return None


def chosen_backends() -> list[str]:
    """The backends this run tests on (``SALVADOR_TEST_BACKENDS``, else all)."""
    names = [n.strip() for n in os.environ.get("SALVADOR_TEST_BACKENDS", "").split(",") if n]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise pytest.UsageError(f"SALVADOR_TEST_BACKENDS names unknown backends: {unknown}")
    return names or list(BACKENDS)


def redis_available() -> bool:
    return _reachable("127.0.0.1", 6379)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("only_backend")
        names = [n for n in (only.args if only else BACKENDS) if n in chosen_backends()]
        metafunc.parametrize("backend", names, indirect=True)
    if "queue_name" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("only_queue")
        metafunc.parametrize("queue_name", list(only.args) if only else QUEUES, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = chosen_backends()
    pg_up = "postgres" not in chosen or postgres_available()
    mariadb_skip = mariadb_missing() if "mariadb" in chosen else None
    if os.environ.get("SALVADOR_TEST_REQUIRE_SERVICES"):
        if not pg_up:
            raise pytest.UsageError(
                "PostgreSQL is unreachable and SALVADOR_TEST_REQUIRE_SERVICES is set."
            )
        if mariadb_skip:
            raise pytest.UsageError(
                f"MariaDB tests cannot run: {mariadb_skip}; SALVADOR_TEST_REQUIRE_SERVICES is set."
            )
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        if backend is None:
            kept.append(item)
            continue
        if backend not in BACKENDS:  # none of its backends is chosen (SALVADOR_TEST_BACKENDS)
            dropped.append(item)
            continue
        if backend == "postgres" and not pg_up:
            dropped.append(item)
            continue
        if backend == "postgres":
            item.add_marker(pytest.mark.postgres)
        if backend == "mariadb":
            item.add_marker(pytest.mark.mariadb)
            if mariadb_skip:
                item.add_marker(pytest.mark.skip(reason=f"MariaDB tests: {mariadb_skip}"))
        databases = {BACKENDS[backend]}
        if item.get_closest_marker("admin_db"):
            databases.add("default")
        item.add_marker(pytest.mark.django_db(transaction=True, databases=sorted(databases)))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _close_queues():
    """Stop queue threads (the PostgreSQL listener) so no connection outlives a test."""
    yield
    reset_queues()


@pytest.fixture(autouse=True)
def _no_leaked_worker_threads():
    """A test must stop every worker it starts: a leftover thread holds connections."""
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [t.name for t in threading.enumerate() if t.name.startswith("salvador-")]
        if not alive:
            return
        time.sleep(0.05)
    pytest.fail(f"worker threads still running after the test: {alive}")


@pytest.fixture
def backend(request: pytest.FixtureRequest, settings) -> str:
    """The database alias holding tasks in this test (SQLite, PostgreSQL or MariaDB)."""
    alias = BACKENDS[request.param]
    settings.SALVADOR = {**settings.SALVADOR, "DATABASE": alias}
    return alias


@pytest.fixture
def queue_name(request: pytest.FixtureRequest, backend, settings) -> Iterator[str]:
    """The queue of this test ("database" or "redis", with a key prefix of its own)."""
    name = request.param
    settings.SALVADOR = {
        **settings.SALVADOR,
        "QUEUE": name,
        "KEY_PREFIX": f"salvador-test:{uuid.uuid4().hex[:12]}:",
    }
    yield name
    if name == "redis":
        delete_keys(settings.SALVADOR["KEY_PREFIX"])


def delete_keys(prefix: str) -> None:
    """Remove every Redis key under ``prefix`` (a test's own namespace)."""
    import redis
    from django_redis import get_redis_connection

    client = get_redis_connection("redis")
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass  # a test's private redis-server, already stopped


@pytest.fixture
def workflow_names():
    """Names of workflows a test defines; unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        registry.unregister(name)


@pytest.fixture
def salvador_tasks(settings, backend) -> Iterator[dict[str, object]]:
    """TASKS on our backend (queues "default" and "other", quick retries)."""
    settings.TASKS = deepcopy(settings.TASKS_ON_SALVADOR)
    from salvador_django.tasks import compat, told
    from salvador_django.tasks.names import PREFIX

    compat.task_backends["default"]  # registers the queues' workflows
    yield settings.TASKS
    told.disconnect()  # its relays would make every later test's signals heard
    for name in registry.names():
        if name.startswith(PREFIX):
            registry.unregister(name)
