"""One task per idempotency key, whatever the number of callers racing with it.

The database enforces it (``salvador_task_idempotency_key``, in a form MySQL and
MariaDB keep too); a caller that loses the race gets the winner's task, never an
error and never a second row. Raced by threads of one process and by processes.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict

from django.db import connections

from salvador_django import submit
from salvador_django.models import Task
from tests.support.processes import ROOT, kill_group, start_in_group, worker_environment

ROUNDS = 20
CALLERS = 8


def test_threads_racing_with_one_key_get_one_task_every_round(backend, settings):
    barrier = threading.Barrier(CALLERS)
    got: dict[str, list[object]] = defaultdict(list)
    lock = threading.Lock()

    def caller() -> None:
        try:
            for n in range(ROUNDS):
                barrier.wait(timeout=30)
                try:
                    found: object = submit("three-steps", {"n": n}, idempotency_key=f"k{n}").id
                except Exception as exc:  # recorded: the test fails on any
                    found = exc
                with lock:
                    got[f"k{n}"].append(found)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [found for ids in got.values() for found in ids if isinstance(found, Exception)]
    assert not errors, errors[:3]
    assert {key: len(set(ids)) for key, ids in got.items()} == {f"k{n}": 1 for n in range(ROUNDS)}
    assert Task.objects.using(backend).count() == ROUNDS


def test_processes_racing_with_one_key_get_one_task_every_round(backend, settings):
    env = worker_environment(backend, settings.SALVADOR, lease_seconds=60, sweep_interval=30)
    start = time.time() + 3  # time for every process to import Django first
    command = [sys.executable, "-m", "tests.support.submit_keys", str(start), str(ROUNDS), "p"]
    processes = [
        start_in_group(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        outputs = [process.communicate(timeout=120)[0] for process in processes]
    finally:
        for process in processes:
            kill_group(process)
    got: dict[str, set[str]] = defaultdict(set)
    for output in outputs:
        for line in output.splitlines():
            key, found = line.split(" ", 1)
            assert not found.startswith("error"), line
            got[key].add(found)
    assert {key: len(ids) for key, ids in got.items()} == {f"p{n}": 1 for n in range(ROUNDS)}
    assert sum(len(output.splitlines()) for output in outputs) == 4 * ROUNDS
    rows = Task.objects.using(backend).values_list("idempotency_key", "id")
    assert {key: {str(task_id)} for key, task_id in rows} == dict(got)
