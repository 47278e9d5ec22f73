"""Run ``manage.py runworkflows`` as a real subprocess against the test databases.

The machinery is ``tests/support/processes.py``: each worker runs in a process group
of its own, and every group is killed at teardown, whatever the test's outcome.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import WorkerProcesses


@pytest.fixture
def start_worker(backend, tmp_path, settings) -> Iterator[WorkerProcesses]:
    """Start ``runworkflows`` subprocesses on the test's database; all are killed afterwards."""
    workers = WorkerProcesses(backend, settings.SALVADOR, tmp_path)
    try:
        yield workers
    finally:
        workers.close()
