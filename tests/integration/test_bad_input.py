"""The bad-input catalogue (issue 8), on SQLite and PostgreSQL.

Every case stores tasks in several states first (the ``stored`` fixture), then makes
one bad call and checks two things: the error (its type, and a message that says
what is wrong), and that nothing already stored changed: every ``Task`` and
``StepRun`` row is as it was (``unchanged``). Cases that run a worker leave out the
tasks the worker is expected to run.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from salvador_django import Retry, TaskStatus, Workflow, submit
from salvador_django.conf import DEFAULTS
from salvador_django.definitions import autodiscover, registry
from salvador_django.dialect import MARIADB_JSON_DEPTH
from salvador_django.exceptions import (
    ConfigurationError,
    InvalidTransition,
    PayloadError,
    WorkflowNotFound,
)
from salvador_django.models import StepRun, Task
from salvador_django.payloads import max_depth
from salvador_django.queues import Entry, announce, get_queue
from salvador_django.queues.database import CHANNEL, DatabaseQueue
from salvador_django.submission import MAX_BODY_DEPTH
from salvador_django.testing import run_until_idle
from salvador_django.worker import Worker, WorkerOptions
from tests.factories import StepRunFactory, TaskFactory, failed_after_retries
from tests.support.processes import run_in_group
from tests.support.waiting import run_in_threads

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAX_BODY_BYTES: int = DEFAULTS["MAX_BODY_BYTES"]


# -- what is stored before each bad call, and the check that it did not change ---------


@dataclass
class Stored:
    """Tasks stored before the bad call, one per state."""

    pending: Task  # due: a worker runs it
    completed: Task  # three completed step runs
    failed: Task  # the first step completed, the second failed twice
    cancelled: Task


@pytest.fixture
def stored(backend: str) -> Stored:
    completed = TaskFactory(completed=True, state={"first": 1, "second": 1, "third": 1})
    for index, name in enumerate(("first", "second", "third")):
        StepRunFactory(task=completed, index=index, name=name, output={"step": name})
    return Stored(
        pending=TaskFactory(meta={"tenant": "acme"}, priority=1),
        completed=completed,
        failed=failed_after_retries(2, state={"first": 1}),
        cancelled=TaskFactory(cancelled=True),
    )


def stored_rows(alias: str, exclude: Iterable[uuid.UUID] = ()) -> dict[str, list[Any]]:
    """Every ``Task`` and ``StepRun`` row of ``alias``, but those of the tasks ``exclude``."""
    left_out = list(exclude)
    return {
        "tasks": list(Task.objects.using(alias).exclude(id__in=left_out).order_by("id").values()),
        "step_runs": list(
            StepRun.objects.using(alias).exclude(task_id__in=left_out).order_by("id").values()
        ),
    }


@contextmanager
def unchanged(alias: str, exclude: Iterable[uuid.UUID] = ()) -> Iterator[None]:
    """The block leaves every stored row (but those of ``exclude``) as it found it."""
    left_out = list(exclude)
    before = stored_rows(alias, left_out)
    assert before["tasks"], "the test stored nothing to compare"
    yield
    assert stored_rows(alias, left_out) == before


#: The refusal of a body nested too deep: 100 levels, 31 on MariaDB (what it stores).
TOO_DEEP = (
    rf"^The body is nested deeper than the maximum of ({MAX_BODY_DEPTH}|{MARIADB_JSON_DEPTH}) "
    r"levels\.$"
)


def nested(depth: int, leaf: Any = None, *, kind: type = list) -> Any:
    """``leaf`` inside ``depth`` lists (or dicts): deeper than ``json`` can serialise."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind is list else {"a": value}
    return value


def database_queue() -> DatabaseQueue:
    queue = get_queue()
    assert isinstance(queue, DatabaseQueue)
    return queue


def burst(**options: Any) -> None:
    """Run a worker in this process until nothing is due; it must end normally."""
    assert Worker(WorkerOptions.from_settings(burst=True, **options)).run()


# -- 1-7: submit ------------------------------------------------------------------------


def one_byte_too_many() -> str:
    return "a" * (DEFAULT_MAX_BODY_BYTES - 1)  # serialised with its two quotes


# What is wrong with a string the database cannot hold, and why (the messages' words).
NUL = ("a NUL character ('\\x00')", "PostgreSQL cannot store it in text or JSON")


def surrogate(char: str) -> tuple[str, str]:
    return (f"a lone surrogate ({char!r})", "it cannot be encoded as UTF-8")


BAD_SUBMITS = [
    # 1. an unknown workflow: the message lists the registered ones
    pytest.param(
        lambda: submit("no-such-workflow", {}),
        WorkflowNotFound,
        r"^No workflow named 'no-such-workflow' is registered \(registered: .*three-steps",
        id="unknown-workflow",
    ),
    # 2. not JSON
    *(
        pytest.param(
            lambda body=body: submit("three-steps", body),
            PayloadError,
            rf"^The body is not JSON-serialisable: Object of type {kind} is not JSON serializable",
            id=f"body-{kind}",
        )
        for kind, body in [
            ("datetime", {"when": datetime.now(tz=UTC)}),
            ("set", {"x": {1, 2}}),
            ("bytes", [b"raw"]),
            ("object", object()),
        ]
    ),
    # 3. NaN and the infinities, alone or deep inside
    *(
        pytest.param(
            lambda body=body: submit("three-steps", body),
            PayloadError,
            r"^The body is not JSON-serialisable: Out of range float values are not JSON",
            id=f"body-{name}",
        )
        for name, body in [
            ("nan", math.nan),
            ("infinity", {"x": math.inf}),
            ("minus-infinity", {"x": -math.inf}),
            ("nan-nested", {"a": [1, {"b": [2.5, math.nan]}]}),
        ]
    ),
    # 4. nested deeper than MAX_BODY_DEPTH, up to 10,000 levels: a PayloadError, never a
    # RecursionError, nor a body stored that a page or a step later fails to read
    *(
        pytest.param(
            lambda depth=depth, kind=kind: submit("three-steps", nested(depth, kind=kind)),
            PayloadError,
            TOO_DEEP,
            id=f"body-{depth}-{kind.__name__}s-deep",
        )
        for depth in (MAX_BODY_DEPTH + 1, 950, 10_000)
        for kind in (list, dict)
    ),
    pytest.param(
        lambda: submit("three-steps", {"ok": [1, 2], "deep": nested(MAX_BODY_DEPTH)}),
        PayloadError,
        TOO_DEEP,
        id="body-one-level-too-deep-inside",
    ),
    # 4b. text the database cannot hold: NUL (PostgreSQL refuses it in text and jsonb) and
    # lone surrogates (not UTF-8), refused on every database; the message says where
    *(
        pytest.param(
            lambda body=body: submit("three-steps", body),
            PayloadError,
            "^" + re.escape(f"The body has {problem} at {where}: {why}."),
            id=f"body-{name}",
        )
        for name, body, where, (problem, why) in [
            ("nul", "a\x00b", "body", NUL),
            ("nul-value", {"note": "end\x00"}, "body['note']", NUL),
            ("nul-key", {"k\x00": 1}, "body['k\\x00'] (a key)", NUL),
            ("nul-nested", [1, {"a": ["x", "\x00"]}], "body[1]['a'][1]", NUL),
            ("surrogate", "bad \udc80", "body", surrogate("\udc80")),
            ("surrogate-value", {"a": ["\ud800"]}, "body['a'][0]", surrogate("\ud800")),
            ("surrogate-key", {"\udc80": 1}, "body['\\udc80'] (a key)", surrogate("\udc80")),
        ]
    ),
    # 5. one byte over the default MAX_BODY_BYTES
    pytest.param(
        lambda: submit("three-steps", one_byte_too_many()),
        PayloadError,
        rf"^The body is {DEFAULT_MAX_BODY_BYTES + 1} bytes serialised; "
        rf"MAX_BODY_BYTES is {DEFAULT_MAX_BODY_BYTES}\.$",
        id="body-over-max-body-bytes",
    ),
    # 6. meta maps str to str
    pytest.param(
        lambda: submit("three-steps", {}, meta={"tenant": "acme", "n": 1}),  # type: ignore[dict-item]
        PayloadError,
        r"^meta must map str to str; bad entries: 'n'\.$",
        id="meta-int-value",
    ),
    pytest.param(
        lambda: submit("three-steps", {}, meta={"tenant": None, "tags": ["a"]}),  # type: ignore[dict-item]
        PayloadError,
        r"^meta must map str to str; bad entries: 'tenant', 'tags'\.$",
        id="meta-none-and-list-values",
    ),
    pytest.param(
        lambda: submit("three-steps", {}, meta={1: "x"}),  # type: ignore[dict-item]
        PayloadError,
        r"^meta must map str to str; bad entries: 1\.$",
        id="meta-int-key",
    ),
    pytest.param(
        lambda: submit("three-steps", {}, meta=["tenant"]),  # type: ignore[arg-type]
        PayloadError,
        r"^meta must be a mapping of str to str, not list\.$",
        id="meta-not-a-mapping",
    ),
    *(
        pytest.param(
            lambda meta=meta: submit("three-steps", {}, meta=meta),
            PayloadError,
            "^" + re.escape(f"meta has {problem} in {where}: {why}."),
            id=f"meta-{name}",
        )
        for name, meta, where, (problem, why) in [
            ("nul-value", {"tenant": "acme", "note": "a\x00"}, "the value of 'note'", NUL),
            ("nul-key", {"ten\x00ant": "acme"}, "the key 'ten\\x00ant'", NUL),
            ("surrogate-value", {"tenant": "\udc80"}, "the value of 'tenant'", surrogate("\udc80")),
            ("surrogate-key", {"\ud800x": "acme"}, "the key '\\ud800x'", surrogate("\ud800")),
        ]
    ),
    # 7. a naive run_after while USE_TZ is True, and the other scheduling arguments
    pytest.param(
        lambda: submit("three-steps", {}, run_after=datetime(2030, 1, 1)),
        PayloadError,
        r"^run_after must be timezone-aware \(USE_TZ is True\)\.$",
        id="run-after-naive",
    ),
    pytest.param(
        lambda: submit("three-steps", {}, run_after="tomorrow"),  # type: ignore[arg-type]
        PayloadError,
        r"^run_after must be a datetime, not str\.$",
        id="run-after-not-a-datetime",
    ),
    pytest.param(
        lambda: submit("three-steps", {}, delay=1, run_after=timezone.now()),
        PayloadError,
        r"^Pass either delay or run_after, not both\.$",
        id="delay-and-run-after",
    ),
    *(
        pytest.param(
            lambda delay=delay: submit("three-steps", {}, delay=delay),
            PayloadError,
            r"^delay must be a number of seconds from 0 to \d+, not ",
            id=f"delay-{name}",
        )
        for name, delay in [
            ("negative", -1),
            ("negative-timedelta", timedelta(seconds=-5)),
            ("nan", math.nan),
            ("infinity", math.inf),
            ("over-a-century", 1e20),
            ("bool", True),
        ]
    ),
    *(
        pytest.param(
            lambda priority=priority: submit("three-steps", {}, priority=priority),
            PayloadError,
            r"^priority must be an int from -2147483648 to 2147483647 "
            rf"\(a 32-bit integer\), not {re.escape(repr(priority))}\.$",
            id=f"priority-{name}",
        )
        for name, priority in [
            ("not-an-int", "high"),
            ("bool", True),
            ("2**31", 2**31),
            ("-2**31-1", -(2**31) - 1),
            ("2**63", 2**63),
            ("10**30", 10**30),
        ]
    ),
    *(
        pytest.param(
            lambda key=key: submit("three-steps", {}, idempotency_key=key),
            PayloadError,
            r"^idempotency_key must be a non-empty string of at most 255 characters\.$",
            id=f"idempotency-key-{name}",
        )
        for name, key in [("empty", ""), ("too-long", "k" * 256), ("not-a-str", 1001)]
    ),
    *(
        pytest.param(
            lambda key=key: submit("three-steps", {}, idempotency_key=key),
            PayloadError,
            "^" + re.escape(f"idempotency_key has {problem}: {why}."),
            id=f"idempotency-key-{name}",
        )
        for name, key, (problem, why) in [
            ("nul", "order-\x00-1", NUL),
            ("surrogate", "order-\udc80", surrogate("\udc80")),
        ]
    ),
]


@pytest.mark.only_queue("database")
@pytest.mark.parametrize(("call", "error", "message"), BAD_SUBMITS)
def test_a_bad_submit_raises_a_clear_error_and_stores_nothing(
    backend: str,
    queue_name: str,
    stored: Stored,
    call: Callable[[], Task],
    error: type[Exception],
    message: str,
) -> None:
    wakeup = database_queue().wakeup
    announced = wakeup.generation
    with unchanged(backend), pytest.raises(error, match=message):
        call()
    assert wakeup.generation == announced  # nothing was announced to the queue either


def test_the_limits_of_submit_are_stored_and_read_back(backend: str) -> None:
    """Up to each limit, a submit is accepted, and its values come back as they were."""
    bodies = [
        nested(max_depth(), "leaf"),  # 100 levels; 31 on MariaDB, the most it stores
        nested(max_depth(), {"leaf": 1}, kind=dict)["a"],  # dicts all the way down
        [{"n": n} for n in range(500)],  # many brackets, none deep
        {"path": "C:\\u0000", "quote": '"[{\\', "brackets": "[[[[{{{{" * 50},
        {"emoji": "\U0001f600 é ✓", "tab": "\t", "bell": "\x07"},
    ]
    tasks = [
        submit("three-steps", body, meta={"k": "é\U0001f600"}, idempotency_key=f"\U0001f600{n}")
        for n, body in enumerate(bodies)
    ]
    tasks += [submit("three-steps", {}, priority=p) for p in (-(2**31), 2**31 - 1)]
    for task in tasks:
        row = Task.objects.using(backend).get(id=task.id)
        assert (row.body, row.meta, row.priority) == (task.body, task.meta, task.priority)
        assert row.idempotency_key == task.idempotency_key


@pytest.mark.only_backend("mariadb")
def test_mariadb_stores_bodies_as_deep_as_its_json_check_allows_and_refuses_deeper(backend):
    """MariaDB's JSON columns refuse a value nested over 31 levels: submit says so first."""
    assert max_depth() == MARIADB_JSON_DEPTH
    stored = submit("three-steps", nested(MARIADB_JSON_DEPTH, "leaf"))
    assert Task.objects.using(backend).get(id=stored.id).body == stored.body
    with pytest.raises(PayloadError, match="maximum of 31 levels"):
        submit("three-steps", nested(MARIADB_JSON_DEPTH + 1, "leaf"))


# -- 8: tasks of a workflow a deploy removed --------------------------------------------


RETIRED = "retired-workflow"


def insert_retired_task() -> Task:
    """A task of a workflow this release no longer has, as an older release submitted it."""
    assert RETIRED not in registry
    task = TaskFactory(workflow=RETIRED, step_name="old-step", body={"order": 7})
    announce([Entry.of(task)])  # the older release's submit announced it, too
    return task


def test_tasks_of_an_unregistered_workflow_stay_pending_and_untouched(
    backend: str, queue_name: str, stored: Stored
) -> None:
    """Workers claim only registered workflows (docs/workflows.md, "Changing definitions")."""
    retired = insert_retired_task()
    with unchanged(backend, exclude=[stored.pending.id]):
        burst()
    assert Task.objects.using(backend).get(id=stored.pending.id).status == TaskStatus.COMPLETED
    row = Task.objects.using(backend).get(id=retired.id)
    assert (row.status, row.step_name, row.attempt, row.error) == (
        TaskStatus.PENDING,
        "old-step",
        0,
        "",
    )
    # Running the workers again finds nothing to do: no loop over the retired task.
    with unchanged(backend):
        burst()
        assert run_until_idle() == 0


def test_a_starting_worker_warns_of_tasks_of_unregistered_workflows(
    backend: str, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    insert_retired_task()
    insert_retired_task()
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        burst()
    assert (
        f"2 pending task(s) of workflow {RETIRED!r}, which is not registered: no worker runs them"
        in caplog.text
    )


def test_a_worker_named_an_unregistered_workflow_fails_its_tasks_once(
    backend: str, stored: Stored
) -> None:
    """A worker given the retired name anyway (the Worker API) fails its tasks clearly."""
    retired = insert_retired_task()
    with unchanged(backend, exclude=[stored.pending.id, retired.id]):
        burst(workflows=[RETIRED, "three-steps"])
    assert Task.objects.using(backend).get(id=stored.pending.id).status == TaskStatus.COMPLETED
    row = Task.objects.using(backend).get(id=retired.id)
    assert row.status == TaskStatus.FAILED
    assert row.error.startswith(
        f"WorkflowNotFound: No workflow named {RETIRED!r} is registered (registered: "
    )
    assert (row.step, row.step_name, row.attempt) == (0, "old-step", 0)
    assert (row.claimed_by, row.lease_expires_at) == (None, None)
    assert row.finished_at is not None
    # No step ran, so no attempt is recorded (as for a task whose step was removed).
    assert not StepRun.objects.using(backend).filter(task_id=retired.id).exists()
    # Failed once for good: running again changes nothing.
    with unchanged(backend):
        burst(workflows=[RETIRED, "three-steps"])
        assert run_until_idle([RETIRED]) == 0


# -- 9, 10: operations a task's status does not allow -----------------------------------


@pytest.mark.parametrize(
    ("trait", "operation", "allowed"),
    [
        ("running", "requeue", "allowed while failed or cancelled"),  # 9.
        ("completed", "requeue", "allowed while failed or cancelled"),
        ("pending", "requeue", "allowed while failed or cancelled"),
        ("completed", "cancel", "allowed while pending, running, waiting, paused or failed"),  # 10.
        ("cancelled", "cancel", "allowed while pending, running, waiting, paused or failed"),
    ],
)
def test_an_operation_the_status_forbids_raises_and_changes_nothing(
    backend: str, stored: Stored, trait: str, operation: str, allowed: str
) -> None:
    task = TaskFactory(**({trait: True} if trait != "pending" else {}))
    with unchanged(backend), pytest.raises(InvalidTransition) as raised:
        getattr(task, operation)()
    assert str(raised.value) == f"Cannot {operation} task {task.id}: it is {trait}; {allowed}."
    assert raised.value.status == trait
    assert task.status == trait  # the instance is left as it was, too


def test_requeue_from_start_of_an_unregistered_workflow_raises_and_changes_nothing(
    backend: str, stored: Stored
) -> None:
    task = TaskFactory(workflow=RETIRED, failed=True)
    with (
        unchanged(backend),
        pytest.raises(WorkflowNotFound, match=rf"^No workflow named {RETIRED!r} is registered"),
    ):
        task.requeue(from_start=True)


# -- 11: two operators requeue one failed task at the same moment ------------------------


@pytest.mark.only_backend("postgres")
@pytest.mark.only_queue("database")
def test_concurrent_requeues_of_one_failed_task_requeue_it_once(
    backend: str, queue_name: str, stored: Stored
) -> None:
    """Task.requeue is one conditional UPDATE: the second waits for the first's row lock,
    then finds the task pending and raises InvalidTransition."""
    task = failed_after_retries(3, recoveries=2)
    wrapper = connections[backend]
    listener: Any = wrapper.get_new_connection(wrapper.get_connection_params())
    listener.autocommit = True
    listener.execute(f"LISTEN {CHANNEL}")
    wakeup = database_queue().wakeup
    try:
        for _ in range(3):  # three races, each from a failed task
            Task.objects.using(backend).filter(id=task.id).update(
                status=TaskStatus.FAILED, attempt=3, recoveries=2, error="ValueError: again"
            )
            announced = wakeup.generation

            def requeue(_: int) -> None:
                Task.objects.using(backend).get(id=task.id).requeue()

            with unchanged(backend, exclude=[task.id]):
                before = StepRun.objects.using(backend).filter(task_id=task.id).count()
                outcomes = run_in_threads(requeue, 2)
            assert outcomes.count(None) == 1, outcomes  # exactly one requeue succeeded
            (refused,) = [o for o in outcomes if o is not None]
            assert isinstance(refused, InvalidTransition), refused
            assert refused.status == TaskStatus.PENDING
            assert str(refused) == (
                f"Cannot requeue task {task.id}: it is pending; allowed while failed or cancelled."
            )
            row = Task.objects.using(backend).get(id=task.id)
            assert (row.status, row.step, row.step_name) == (TaskStatus.PENDING, 1, "second")
            assert (row.attempt, row.recoveries, row.error, row.finished_at) == (0, 0, "", None)
            assert StepRun.objects.using(backend).filter(task_id=task.id).count() == before
            # Announced once: one push in this process, one NOTIFY on the server.
            assert wakeup.generation == announced + 1
            notified = [
                n.payload
                for n in listener.notifies(timeout=0.5, stop_after=2)
                if n.payload == "three-steps"
            ]
            assert notified == ["three-steps"]
    finally:
        listener.close()


# -- 12: runworkflows arguments ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "argument --concurrency: must be at least 1, not 0"),
        (["--concurrency", "-3"], "argument --concurrency: must be at least 1, not -3"),
        (["--concurrency", "many"], "argument --concurrency: 'many' is not a valid thread count"),
        (["--poll-interval", "-1"], "argument --poll-interval: must be at least 0.001, not -1"),
        (["--poll-interval", "0"], "argument --poll-interval: must be at least 0.001, not 0"),
        (["--poll-interval", "soon"], "'soon' is not a valid number of seconds"),
        (["--grace-period", "-5"], "argument --grace-period: must be at least 0, not -5"),
        # not finite, or beyond a sane maximum (issue 23): never a dead thread or a worker
        # that never looks for work
        (["--poll-interval", "inf"], "argument --poll-interval: must be at most 3600, not inf"),
        (["--poll-interval", "3601"], "argument --poll-interval: must be at most 3600, not 3601"),
        (
            ["--poll-interval", "nan"],
            "argument --poll-interval: must be from 0.001 to 3600, not nan",
        ),
        (["--grace-period", "inf"], "argument --grace-period: must be at most 86400, not inf"),
        (["--grace-period", "1e300"], "argument --grace-period: must be at most 86400, not 1e300"),
        (["--grace-period", "NaN"], "argument --grace-period: must be from 0 to 86400, not NaN"),
        (["--concurrency", "1001"], "argument --concurrency: must be at most 1000, not 1001"),
        (
            ["--concurrency", "99999999999999999999"],
            "argument --concurrency: must be at most 1000, not 99999999999999999999",
        ),
        (["--concurrency", "inf"], "argument --concurrency: 'inf' is not a valid thread count"),
        (["--pool", "fibers"], "argument --pool: invalid choice: 'fibers'"),
        (["--workflow", "nope"], "Unknown workflow(s): nope (registered: "),
        (
            ["--workflow", "three-steps", "--workflow", RETIRED],
            f"Unknown workflow(s): {RETIRED} (registered: ",
        ),
        (["--queue", "no.such.Queue"], "Cannot import the queue 'no.such.Queue'"),
        (["--queue", "rabbitmq"], "Cannot import the queue 'rabbitmq'"),
        (
            ["--queue", "salvador_django.models.Task"],
            "salvador_django.models.Task is not a salvador_django.queues.Queue subclass.",
        ),
    ],
)
def test_bad_runworkflows_arguments_are_command_errors_that_change_nothing(
    backend: str, stored: Stored, args: list[str], message: str
) -> None:
    # --burst: were a bad argument accepted, the worker would run the pending task
    # (and the rows would change) instead of blocking the test.
    with unchanged(backend), pytest.raises(CommandError) as raised:
        call_command("runworkflows", "--burst", *args)
    assert message in str(raised.value)


# -- 12b: requeueworkflows and purgeworkflows arguments (issue 23) ----------------------


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        (
            "requeueworkflows",
            ["--since", "3000000d"],
            "argument --since: '3000000d' is more than 100 years ago: an age is at most 36500d",
        ),
        (
            "requeueworkflows",
            ["--since", "9" * 400 + "s"],  # a float of infinity
            "is more than 100 years ago: an age is at most 36500d",
        ),
        (
            "requeueworkflows",
            ["--since", "0001-01-01T00:00:00+02:00"],  # before datetime.min in UTC
            "argument --since: '0001-01-01T00:00:00+02:00' is more than 100 years from now: "
            "a date is at most 100 years before or after now",
        ),
        (
            "purgeworkflows",
            ["--older-than", "3000000d"],
            "argument --older-than: '3000000d' is more than 100 years ago: an age is at most "
            "36500d",
        ),
        (
            "purgeworkflows",
            ["--older-than", "9999-12-31T23:59:59-05:00"],  # after datetime.max in UTC
            "is more than 100 years from now: a date is at most 100 years before or after now",
        ),
        (
            "purgeworkflows",
            ["--older-than", "30d", "--batch-size", "99999999999999999999"],
            "argument --batch-size: must be a whole number from 1 to 10000, "
            "not '99999999999999999999'",
        ),
        (
            "requeueworkflows",
            ["--batch-size", "10001"],
            "argument --batch-size: must be a whole number from 1 to 10000, not '10001'",
        ),
    ],
)
def test_bad_maintenance_arguments_are_command_errors_that_change_nothing(
    backend: str, stored: Stored, command: str, args: list[str], message: str
) -> None:
    # Were the bad argument accepted, the failed and cancelled tasks would be requeued,
    # or the finished ones deleted.
    with unchanged(backend), pytest.raises(CommandError) as raised:
        call_command(command, *args)
    assert message in str(raised.value)


# -- 13: a workflows module that raises on import ---------------------------------------


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Write an app package (``workflows.py`` holding ``source``, if any) on sys.path.

    Returns the package's name; its modules leave ``sys.modules`` afterwards.
    """
    made: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(source: str | None) -> str:
        name = f"bad_input_app_{uuid.uuid4().hex[:8]}"
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        if source is not None:
            (package / "workflows.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    yield make
    for module in [m for m in sys.modules if m.partition(".")[0] in made]:
        del sys.modules[module]


@pytest.mark.parametrize(
    ("source", "cause", "detail"),
    [
        (
            "raise RuntimeError('PAYMENT_API_KEY is not set')\n",
            RuntimeError,
            "RuntimeError: PAYMENT_API_KEY is not set",
        ),
        (
            "import a_dependency_that_is_not_installed\n",
            ModuleNotFoundError,
            "ModuleNotFoundError: No module named 'a_dependency_that_is_not_installed'",
        ),
        ("def broken(:\n    pass\n", SyntaxError, "SyntaxError: "),
        (
            """
            from salvador_django import Workflow
            Workflow("three-steps")
            """,
            ConfigurationError,
            "ConfigurationError: A workflow named 'three-steps' is already registered.",
        ),
    ],
    ids=["raises", "missing-dependency", "syntax-error", "duplicate-workflow"],
)
def test_a_workflows_module_that_fails_to_import_is_named_in_the_error(
    backend: str,
    stored: Stored,
    make_app: Callable[..., str],
    source: str,
    cause: type[Exception],
    detail: str,
) -> None:
    app = make_app(source)
    registered = registry.names()
    with unchanged(backend), pytest.raises(ConfigurationError) as raised:
        autodiscover([AppConfig.create(app)])
    assert str(raised.value).startswith(f"Importing '{app}.workflows' failed: {detail}")
    assert isinstance(raised.value, ImproperlyConfigured)
    assert type(raised.value.__cause__) is cause  # the original, with its traceback, chained
    assert registry.names() == registered


def test_workflows_registered_before_the_import_failed_are_unregistered(
    make_app: Callable[..., str], workflow_names: list[str]
) -> None:
    workflow_names.append("bad-input-half-defined")
    app = make_app(
        """
        from salvador_django import Workflow
        Workflow("bad-input-half-defined").step("a", lambda task: None)
        raise RuntimeError("the rest of the module is broken")
        """
    )
    config = AppConfig.create(app)
    for _ in range(2):  # importing again fails the same way, not on the workflow's name
        with pytest.raises(ConfigurationError, match="RuntimeError: the rest of the module"):
            autodiscover([config])
        assert "bad-input-half-defined" not in registry


def test_apps_without_a_workflows_module_are_skipped(make_app: Callable[..., str]) -> None:
    registered = registry.names()
    autodiscover([AppConfig.create(make_app(None))])
    assert registry.names() == registered


def test_django_setup_names_the_workflows_module_that_fails(
    backend: str, stored: Stored, make_app: Callable[..., str], tmp_path: Path
) -> None:
    """Through ``SalvadorConfig.ready()``, in a process of its own (``manage.py check``)."""
    app = make_app("raise RuntimeError('PAYMENT_API_KEY is not set')\n")
    (tmp_path / f"{app}_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f"INSTALLED_APPS = [*INSTALLED_APPS, {app!r}]  # noqa: F405\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": f"{app}_settings",
    }
    with unchanged(backend):
        checked = run_in_group(
            [sys.executable, "-m", "django", "check"], cwd=ROOT, env=env, timeout=60
        )
    assert checked.returncode == 1, checked.stderr
    stderr = checked.stderr
    assert (
        f"salvador_django.exceptions.ConfigurationError: Importing '{app}.workflows' failed: "
        "RuntimeError: PAYMENT_API_KEY is not set"
    ) in stderr
    # The original traceback is chained: it shows the line that raised.
    assert "The above exception was the direct cause of the following exception" in stderr
    assert f'{app}/workflows.py", line 1, in <module>' in stderr


# -- 14: a step that returns something that is not JSON ---------------------------------


@pytest.mark.parametrize(
    ("output", "detail"),
    [
        (lambda: {1, 2}, "Object of type set is not JSON serializable"),
        (object, "Object of type object is not JSON serializable"),
        (lambda: {"ratio": math.nan}, "Out of range float values are not JSON compliant"),
        (lambda: nested(10_000), "maximum recursion depth exceeded"),
    ],
    ids=["set", "object", "nan", "10000-deep"],
)
def test_a_step_returning_non_json_fails_its_attempt_and_the_worker_goes_on(
    backend: str,
    stored: Stored,
    workflow_names: list[str],
    output: Callable[[], Any],
    detail: str,
) -> None:
    workflow_names.append("bad-input-output")
    later: list[str] = []
    junk = (
        Workflow("bad-input-output")
        .step("returns-junk", lambda task: output())
        .step("never-runs", lambda task: later.append("ran"))
    )
    bad = junk.submit({}, priority=5)  # claimed first
    good = [submit("three-steps", {"n": n}) for n in range(3)]
    runnable = [bad.id, stored.pending.id, *(t.id for t in good)]
    with unchanged(backend, exclude=runnable):
        burst(concurrency=1, workflows=["bad-input-output", "three-steps"])
    row = Task.objects.using(backend).get(id=bad.id)
    expected = "NotSerialisable: the return value of step 'returns-junk' is not JSON-serialisable: "
    assert row.status == TaskStatus.FAILED
    assert row.error.startswith(expected)
    assert detail in row.error
    assert (row.step, row.step_name, row.attempt) == (0, "returns-junk", 1)
    (run,) = StepRun.objects.using(backend).filter(task_id=bad.id)
    assert (run.name, run.attempt, run.status, run.output) == ("returns-junk", 1, "failed", None)
    assert run.error == row.error
    assert "NotSerialisable" in run.traceback  # not retried: the default policy allows 3
    assert later == []  # the chain stopped
    statuses = Task.objects.using(backend).filter(id__in=[stored.pending.id, *(t.id for t in good)])
    assert set(statuses.values_list("status", flat=True)) == {TaskStatus.COMPLETED}


# -- issue 23: what a step raises, returns or leaves that the database cannot store -------

REPLACED = " (characters the database cannot store were replaced)"
NUL_IN_JSON = "a NUL character (\\u0000), which PostgreSQL cannot store in JSON"


def run_one_bad_step(
    backend: str, stored: Stored, workflow_names: list[str], step: Callable[[Task], Any]
) -> tuple[Task, list[int]]:
    """Run a one-attempt workflow whose step is ``step`` in a burst worker.

    Returns the task as stored afterwards, and the attempt number of each run of the
    step: the step must run once, and the task must not be left for the reaper.
    """
    workflow_names.append("bad-input-unstorable")
    runs: list[int] = []

    def counted(task: Task) -> Any:
        runs.append(task.attempt)
        return step(task)

    workflow = Workflow("bad-input-unstorable").step(
        "unstorable", counted, retry=Retry(max_attempts=1)
    )
    workflow.step("never-runs", lambda task: runs.append(-1))
    bad = workflow.submit({}, priority=5)
    with unchanged(backend, exclude=[bad.id, stored.pending.id]):
        burst(concurrency=1, workflows=["bad-input-unstorable", "three-steps"])
    return Task.objects.using(backend).get(id=bad.id), runs


def raises(exc: Exception) -> Callable[[Task], Any]:
    def step(task: Task) -> Any:
        raise exc

    return step


@pytest.mark.parametrize(
    ("message", "stored_as"),
    [
        ("junk \x00 end", "junk \\x00 end"),
        ("bad \udc80", "bad \\udc80"),
        ("both \x00 and \ud800 and a valid \U0001f422", "both \\x00 and \\ud800 and a valid 🐢"),
    ],
    ids=["nul", "lone-surrogate", "both"],
)
def test_an_error_the_database_cannot_store_is_stored_cleaned_after_one_run(
    backend: str, stored: Stored, workflow_names: list[str], message: str, stored_as: str
) -> None:
    row, runs = run_one_bad_step(backend, stored, workflow_names, raises(ValueError(message)))
    assert runs == [1]  # once, not again and again until the task is poison
    assert row.status == TaskStatus.FAILED
    assert row.error == f"ValueError: {stored_as}{REPLACED}"
    (run,) = StepRun.objects.using(backend).filter(task_id=row.id)
    assert (run.name, run.attempt, run.status, run.error) == ("unstorable", 1, "failed", row.error)
    assert f"ValueError: {stored_as}" in run.traceback
    assert run.traceback.endswith(REPLACED.strip() + "\n")


RETURNED = "the return value of step 'unstorable'"
STATE = "task.state after step 'unstorable'"
LONE = "a surrogate ({}), which is not valid Unicode"


@pytest.mark.parametrize(
    ("step", "what", "problem"),
    [
        pytest.param(lambda task: "a\x00b", RETURNED, NUL_IN_JSON, id="output-nul"),
        pytest.param(lambda task: ["\\\x00"], RETURNED, NUL_IN_JSON, id="output-backslash-nul"),
        pytest.param(
            lambda task: {"deep": ["x\udc80"]}, RETURNED, LONE.format("\\udc80"), id="output-lone"
        ),
        pytest.param(
            lambda task: task.state.update(note="a\x00b"), STATE, NUL_IN_JSON, id="state-nul"
        ),
        pytest.param(
            lambda task: task.state.update(note="\ud83d"),
            STATE,
            LONE.format("\\ud83d"),
            id="state-lone",
        ),
    ],
)
def test_output_or_state_the_database_cannot_store_fails_the_task_after_one_run(
    backend: str,
    stored: Stored,
    workflow_names: list[str],
    step: Callable[[Task], Any],
    what: str,
    problem: str,
) -> None:
    """Refused on every database (SQLite would store a NUL): a workflow works on both."""
    row, runs = run_one_bad_step(backend, stored, workflow_names, step)
    assert runs == [1]
    assert row.status == TaskStatus.FAILED
    assert row.error == f"NotSerialisable: {what} cannot be stored: a string in it holds {problem}"
    assert (row.step, row.step_name, row.attempt, row.state) == (0, "unstorable", 1, {})
    (run,) = StepRun.objects.using(backend).filter(task_id=row.id)
    assert (run.status, run.output, run.error) == ("failed", None, row.error)


@pytest.mark.only_backend("mariadb")
@pytest.mark.parametrize(
    ("step", "what"),
    [
        pytest.param(lambda task: nested(MARIADB_JSON_DEPTH + 1), RETURNED, id="output"),
        pytest.param(
            lambda task: task.state.update(deep=nested(MARIADB_JSON_DEPTH)), STATE, id="state"
        ),
    ],
)
def test_output_or_state_deeper_than_mariadb_stores_fails_the_task_after_one_run(
    backend: str,
    stored: Stored,
    workflow_names: list[str],
    step: Callable[[Task], Any],
    what: str,
) -> None:
    """MariaDB's JSON check refuses the row: the step fails, saying why, not replayed."""
    row, runs = run_one_bad_step(backend, stored, workflow_names, step)
    assert runs == [1]
    assert row.status == TaskStatus.FAILED
    assert row.error == (
        f"NotSerialisable: {what} cannot be stored: it nests deeper than the 31 levels the "
        "database stores (MariaDB's JSON_VALID)"
    )


def test_valid_characters_beyond_the_basic_plane_and_escaped_backslashes_are_stored(
    backend: str, stored: Stored, workflow_names: list[str]
) -> None:
    """What looks like a NUL or a surrogate in the JSON text, but is not one."""
    value = {"turtle": "🐢\U0010ffff", "text": "\\u0000 \\ud800 \\\\u0000", "\\ud83d": "ok"}

    def step(task: Task) -> Any:
        task.state["kept"] = value
        return value

    workflow_names.append("bad-input-storable")
    task = Workflow("bad-input-storable").step("fine", step).submit()
    run_until_idle()
    row = Task.objects.using(backend).get(id=task.id)
    assert (row.status, row.state) == (TaskStatus.COMPLETED, {"kept": value})
    assert StepRun.objects.using(backend).get(task_id=task.id).output == value


def test_a_huge_error_is_stored_and_logged_bounded_saying_what_was_cut(
    backend: str, stored: Stored, workflow_names: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    huge = "é" * 2_000_000
    with caplog.at_level(logging.INFO, logger="salvador_django"):
        row, runs = run_one_bad_step(backend, stored, workflow_names, raises(ValueError(huge)))
    assert (runs, row.status) == ([1], TaskStatus.FAILED)
    kept = 2_000 - len("ValueError: ")
    cut = len(huge) - kept
    assert row.error == f"ValueError: {'é' * kept}… [{cut} characters cut]"
    (run,) = StepRun.objects.using(backend).filter(task_id=row.id)
    assert run.error == row.error
    assert len(run.traceback) < 50_100
    assert run.traceback.startswith("Traceback (most recent call last):")
    assert "characters cut]" in run.traceback
    assert run.traceback.endswith("é\n")  # the end of the message is kept
    logged = [r.getMessage() for r in caplog.records if str(row.id) in r.getMessage()]
    assert logged
    assert max(len(line) for line in logged) < 2_500


def test_logged_errors_cannot_forge_log_lines_and_the_stored_error_keeps_them(
    backend: str, stored: Stored, workflow_names: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    message = "bad\nINFO salvador: task 1 completed\r\x1b[31mred\x85\u2028"
    with caplog.at_level(logging.INFO, logger="salvador_django"):
        row, _ = run_one_bad_step(backend, stored, workflow_names, raises(ValueError(message)))
    assert row.error == f"ValueError: {message}"
    logged = [r.getMessage() for r in caplog.records if str(row.id) in r.getMessage()]
    assert logged
    for line in logged:
        assert not any(c in line for c in "\n\r\x1b\x85\u2028"), line
    assert any(
        "ValueError: bad\\nINFO salvador: task 1 completed\\r\\x1b[31mred\\x85\\u2028" in line
        for line in logged
    )
