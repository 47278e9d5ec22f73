"""The checks of the tasks' database configuration: what they warn of, and the fix named."""

from __future__ import annotations

from typing import Any

import pytest

from salvador_django.store_checks import settings_problems, version_problem

SQLITE = "django.db.backends.sqlite3"
MYSQL = "django.db.backends.mysql"


def ids(alias: str, engine: str, **options: Any) -> list[str]:
    return [str(m.id) for m in settings_problems(alias, {"ENGINE": engine, "OPTIONS": options})]


def test_sqlite_with_immediate_transactions_passes():
    assert ids("default", SQLITE, transaction_mode="IMMEDIATE") == []


@pytest.mark.parametrize("options", [{}, {"transaction_mode": "DEFERRED"}])
def test_sqlite_without_immediate_transactions_is_warned_with_the_setting_to_add(options):
    [warning] = settings_problems("tasks", {"ENGINE": SQLITE, "OPTIONS": options})
    assert warning.id == "salvador.W060"
    assert "database is locked" in warning.msg
    assert (
        warning.hint == "Set DATABASES['tasks']['OPTIONS'][\"transaction_mode\"] = \"IMMEDIATE\"."
    )


def test_mysql_at_django_s_defaults_passes():
    assert ids("default", MYSQL) == []
    assert ids("default", MYSQL, isolation_level="READ COMMITTED", charset="utf8mb4") == []


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable", None])
def test_mysql_outside_read_committed_is_warned(isolation):
    [warning] = settings_problems(
        "default", {"ENGINE": MYSQL, "OPTIONS": {"isolation_level": isolation}}
    )
    assert warning.id == "salvador.W061"
    assert "read committed" in warning.hint


@pytest.mark.parametrize("charset", ["utf8", "utf8mb3", "latin1"])
def test_mysql_with_a_three_byte_connection_charset_is_warned(charset):
    [warning] = settings_problems("default", {"ENGINE": MYSQL, "OPTIONS": {"charset": charset}})
    assert warning.id == "salvador.W063"
    assert repr(charset) in warning.msg
    assert "utf8mb4" in warning.hint


def test_postgresql_settings_are_not_warned_of():
    assert ids("default", "django.db.backends.postgresql") == []


@pytest.mark.parametrize(
    ("mariadb", "version", "problem"),
    [
        (True, (10, 5, 22), "MariaDB 10.5.22; salvador-django needs MariaDB 10.6 or later"),
        (True, (10, 6, 0), None),
        (True, (11, 4, 2), None),
        (False, (5, 7, 44), "MySQL 5.7.44; salvador-django needs MySQL 8.0 or later"),
        (False, (8, 0, 36), None),
    ],
)
def test_a_server_without_skip_locked_is_an_error_naming_both_versions(mariadb, version, problem):
    error = version_problem("default", mariadb, version)
    if problem is None:
        assert error is None
    else:
        assert error is not None
        assert error.id == "salvador.E060"
        assert problem in error.msg
