"""A database without the salvador tables: the worker and submit() say to migrate."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import ROOT, run_in_group

pytestmark = pytest.mark.slow


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` with the test settings on a fresh SQLite file in ``tmp_path``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SALVADOR_TEST_SQLITE_DIR": str(tmp_path),
    }
    env.pop("SALVADOR_TEST_USE_TEST_DATABASES", None)
    return run_in_group([sys.executable, *args], env=env, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("mode", [["--burst"], []])
def test_runworkflows_on_an_unmigrated_database_exits_at_once_saying_migrate(tmp_path, mode):
    began = time.monotonic()
    result = run(tmp_path, "-m", "django", "runworkflows", *mode)
    assert result.returncode != 0
    assert "The salvador tables do not exist in database 'default': run `manage.py migrate`" in (
        result.stderr
    )
    assert time.monotonic() - began < 60
    assert "Traceback" not in result.stderr


def test_runworkflows_on_old_tables_names_the_missing_migrations(tmp_path):
    migrated = run(tmp_path, "-m", "django", "migrate", "salvador", "0005", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    result = run(tmp_path, "-m", "django", "runworkflows", "--burst")
    assert result.returncode != 0
    assert "are not up to date (unapplied: 0006_failed_step_and_step_state" in result.stderr


def test_submit_on_an_unmigrated_database_says_migrate(tmp_path):
    script = (
        "import django; django.setup()\n"
        "from salvador_django import submit\n"
        "from salvador_django.exceptions import ConfigurationError\n"
        "try:\n"
        "    submit('three-steps', {})\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    result = run(tmp_path, "-c", script)
    assert result.returncode == 0, result.stderr
    assert "do not exist or are not up to date: run `manage.py migrate`" in result.stdout
    assert "no such table: salvador_task" in result.stdout
