"""The test support's own parts: when a private PostgreSQL may be started, and that a
process a test started leaves nothing running behind it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks.faults import servers as fault_servers
from tests.support.processes import group_alive, run_in_group
from tests.support.servers import Verdict, private_postgres_verdict, runuser_binary
from tests.support.waiting import wait_until

BINARIES = Path("/usr/lib/postgresql/15/bin")
RUNUSER = "/usr/sbin/runuser"
REQUIRED = {"SALVADOR_TEST_REQUIRE_SERVICES": "1"}


def verdict(
    uid: int = 0,
    environ: dict[str, str] | None = None,
    *,
    binaries: Path | None = BINARIES,
    runuser: str | None = RUNUSER,
    postgres_user: bool = True,
) -> Verdict:
    return private_postgres_verdict(
        uid, environ or {}, binaries=binaries, runuser=runuser, postgres_user=postgres_user
    )


def test_root_with_runuser_binaries_and_the_postgres_user_starts_it() -> None:
    assert verdict() == Verdict("start")
    assert verdict(environ=REQUIRED) == Verdict("start")


def test_a_process_that_is_not_root_skips_with_the_reason() -> None:
    action, reason = verdict(uid=1000)
    assert action == "skip"
    assert "needs root (this process runs as uid 1000)" in reason
    assert "runuser" in reason


def test_when_services_are_required_a_process_that_is_not_root_fails() -> None:
    action, reason = verdict(uid=1000, environ=REQUIRED)
    assert action == "fail"
    assert reason.endswith(", and SALVADOR_TEST_REQUIRE_SERVICES is set")
    assert "needs root" in reason


def test_an_empty_requirement_variable_does_not_require() -> None:
    assert verdict(uid=1000, environ={"SALVADOR_TEST_REQUIRE_SERVICES": ""}).action == "skip"


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ({"binaries": None}, "no PostgreSQL binaries"),
        ({"runuser": None}, "runuser is not installed (looked for /usr/sbin/runuser and on PATH)"),
        ({"postgres_user": False}, "no postgres system user"),
    ],
)
def test_root_missing_a_part_skips_or_fails_naming_it(
    missing: dict[str, object], expected: str
) -> None:
    skipped = verdict(**missing)  # type: ignore[arg-type]
    assert skipped.action == "skip"
    assert expected in skipped.reason
    failed = verdict(environ=REQUIRED, **missing)  # type: ignore[arg-type]
    assert failed.action == "fail"
    assert expected in failed.reason


def test_runuser_is_found_in_sbin_when_it_is_not_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no /usr/sbin, as in a user's virtualenv
    monkeypatch.setattr(os, "access", lambda path, mode: path == RUNUSER)
    assert runuser_binary() == RUNUSER


def test_runuser_falls_back_to_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    elsewhere = tmp_path / "runuser"
    elsewhere.write_text("#!/bin/sh\n")
    elsewhere.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(fault_servers, "RUNUSER", str(tmp_path / "not-there"))
    assert runuser_binary() == str(elsewhere)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert runuser_binary() is None


def test_run_in_group_kills_what_the_command_left_running() -> None:
    run = run_in_group(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $$ $!"], timeout=30)
    assert run.returncode == 0, run.stderr
    pgid, leftover = (int(pid) for pid in run.stdout.split())
    # Killed with its group; init reaps it a moment later (a zombie still counts).
    wait_until(lambda: not group_alive(pgid), timeout=10)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    with pytest.raises(ProcessLookupError):
        os.kill(leftover, 0)


def test_run_in_group_kills_the_group_when_the_command_times_out() -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_in_group(["sh", "-c", "sleep 300 >/dev/null 2>&1 & sleep 300"], timeout=0.5)
    assert time.monotonic() - started < 15
