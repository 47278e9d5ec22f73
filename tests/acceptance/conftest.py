"""Run ``manage.py runworkflows`` as a real subprocess against the test databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """A ``runworkflows`` subprocess whose output is kept in a log file."""

    def __init__(self, alias: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "runworkflows", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
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
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_worker(backend, tmp_path, settings):
    """Start ``runworkflows`` subprocesses on the test's database; all are killed afterwards."""
    started: list[WorkerProcess] = []

    def start(
        *args: str, lease_seconds: float = 60, sweep_interval: float = 30, **env_overrides: str
    ) -> WorkerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "SALVADOR_TEST_USE_TEST_DATABASES": "1",
            "SALVADOR_TEST_DATABASE": backend,
            "SALVADOR_TEST_QUEUE": settings.SALVADOR["QUEUE"],
            "SALVADOR_TEST_KEY_PREFIX": settings.SALVADOR["KEY_PREFIX"],
            "SALVADOR_TEST_LEASE_SECONDS": str(lease_seconds),
            "SALVADOR_TEST_SWEEP_INTERVAL": str(sweep_interval),
            "SALVADOR_LOG_LEVEL": "INFO",
            **env_overrides,
        }
        worker = WorkerProcess(backend, list(args), env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.signal(signal.SIGKILL)
        worker.kill()
