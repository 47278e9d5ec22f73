"""Processes the tests start, each in a process group of its own, killed whole at teardown.

A ``runworkflows --pool processes`` supervisor forks its children into its own group,
and a benchmark or fault-injection run starts workers of its own: killing the group,
not the one process, is what guarantees that no leftover worker claims the tasks of
a later test. ``start_in_group`` starts, ``kill_group`` ends (SIGKILL to the whole
group, then reaps the leader), ``run_in_group`` is ``subprocess.run`` with both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start_in_group(command: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` in a new session: the child leads a process group of its own."""
    return subprocess.Popen(command, start_new_session=True, **popen)


def kill_group(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGKILL every process of ``process``'s group (its children too), then reap it.

    Safe to call twice and after the process exited: children it left behind in its
    group are killed all the same.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # started in a new session: pgid == pid
    process.wait(timeout=timeout)


def group_alive(pgid: int) -> bool:
    """Whether any process (a zombie included) of group ``pgid`` still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_in_group(
    command: Sequence[str], *, timeout: float, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(..., capture_output=True, text=True)`` in a group of its own.

    The whole group is killed when the command returns, times out or the test fails,
    so nothing it started outlives it.
    """
    with start_in_group(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    ) as process:  # closes the pipes, even after a timeout
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            kill_group(process)
    return subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)


class WorkerProcess:
    """A ``runworkflows`` subprocess, in a group of its own, whose output goes to a log file."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.process: subprocess.Popen[bytes] = start_in_group(
            [sys.executable, "-m", "django", "runworkflows", *args],
            cwd=ROOT,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pgid(self) -> int:
        """Its process group, which a process pool's children share."""
        return self.process.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def wait_for_output(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker never printed {text!r}; output:\n{self.output()}")
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the worker's whole group (a pool's children too) and close its log."""
        try:
            kill_group(self.process)
        finally:
            self._log.close()


def worker_environment(
    backend: str, salvador: Mapping[str, Any], *, lease_seconds: float, sweep_interval: float
) -> dict[str, str]:
    """The environment of a ``runworkflows`` process on this test's database and queue."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SALVADOR_TEST_USE_TEST_DATABASES": "1",
        "SALVADOR_TEST_DATABASE": backend,
        "SALVADOR_TEST_QUEUE": salvador["QUEUE"],
        "SALVADOR_TEST_KEY_PREFIX": salvador["KEY_PREFIX"],
        "SALVADOR_TEST_LEASE_SECONDS": str(lease_seconds),
        "SALVADOR_TEST_SWEEP_INTERVAL": str(sweep_interval),
        "SALVADOR_LOG_LEVEL": "INFO",
    }


class WorkerProcesses:
    """``start_worker``: starts ``runworkflows`` processes; ``close()`` kills every group.

    Called like a function: ``start_worker("--concurrency", "2", lease_seconds=2)``;
    keyword arguments other than the lease and the sweep override the environment.
    """

    def __init__(self, backend: str, salvador: Mapping[str, Any], logs: Path) -> None:
        self.backend = backend
        self.salvador = dict(salvador)
        self.logs = logs
        self.started: list[WorkerProcess] = []

    def __call__(
        self, *args: str, lease_seconds: float = 60, sweep_interval: float = 30, **env: str
    ) -> WorkerProcess:
        environment = worker_environment(
            self.backend, self.salvador, lease_seconds=lease_seconds, sweep_interval=sweep_interval
        )
        log = self.logs / f"worker-{len(self.started)}.log"
        worker = WorkerProcess(args, {**environment, **env}, log)
        self.started.append(worker)
        return worker

    def close(self) -> None:
        """Kill every worker's group, each even if killing another failed."""
        errors: list[Exception] = []
        for worker in self.started:
            try:
                worker.kill()
            except Exception as exc:  # raised once the others are killed too
                errors.append(exc)
        if errors:
            raise errors[0]
