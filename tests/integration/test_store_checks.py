"""The database checks that need the server: SQLite's journal, MySQL's charset."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.db import connections
from django.db.backends.sqlite3.base import DatabaseWrapper

from salvador_django.store_checks import _mysql_server, _sqlite_journal


@pytest.mark.only_backend("sqlite")
def test_the_suite_s_databases_pass_the_database_checks(backend):
    found = run_checks(databases=["default", "postgres"], include_deployment_checks=False)
    assert [m.id for m in found if m.id.startswith("salvador.")] == []


@pytest.mark.only_backend("sqlite")
def test_a_sqlite_file_without_wal_is_warned(backend, tmp_path: Path):
    settings = {**connections.settings["default"], "NAME": str(tmp_path / "tasks.sqlite3")}
    settings["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}
    connection = DatabaseWrapper(settings, alias="probe")
    try:
        [warning] = _sqlite_journal("probe", connection)
        assert warning.id == "salvador.W062"
        assert "'delete' journal" in warning.msg
        assert "journal_mode=WAL" in str(warning.hint)
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
        assert _sqlite_journal("probe", connection) == []
    finally:
        connection.close()


@pytest.mark.only_backend("mariadb")
def test_a_tasks_table_in_three_byte_utf8_is_warned(backend):
    connection = connections[backend]
    assert _mysql_server(backend, connection) == []
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE salvador_probe (note VARCHAR(20)) CHARACTER SET utf8mb3")
    try:
        [warning] = _mysql_server(backend, connection)
        assert warning.id == "salvador.W063"
        assert "salvador_probe.note" in warning.msg
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE salvador_probe")


@pytest.mark.only_backend("mariadb")
def test_a_session_clock_in_another_time_zone_is_warned(backend):
    connection = connections[backend]
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+02:00'")
    try:
        [warning] = _mysql_server(backend, connection)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00'")
    assert warning.id == "salvador.W064"
    assert "NOW() is +02:00 from UTC, and Django writes its times at +00:00" in warning.msg
    assert "SET time_zone = '+00:00'" in warning.hint
    assert _mysql_server(backend, connection) == []
