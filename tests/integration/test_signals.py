"""The public signals of a task's life: sent once, after the commit that makes them true."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from salvador_django import TaskStatus, send_signal, signals, submit
from salvador_django.models import Task
from salvador_django.testing import run_until_idle
from tests.support.tasks import make_due


class Heard:
    """Every signal of :mod:`salvador_django.signals` heard, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def receiver(self, name: str) -> Any:
        def receive(sender: Any, **kwargs: Any) -> None:
            assert sender is Task
            kwargs.pop("signal")
            self.calls.append((name, kwargs))

        return receive

    def of(self, task: Task) -> list[tuple[str, dict[str, Any]]]:
        """What was heard of ``task``, each with the arguments beyond ``task``."""
        return [
            (name, {k: v for k, v in args.items() if k != "task"})
            for name, args in self.calls
            if args["task"].id == task.id
        ]

    def names(self, task: Task) -> list[str]:
        return [name for name, _ in self.of(task)]

    def steps(self, task: Task) -> list[tuple[str, str, int]]:
        """(step, outcome, attempt) of each ``step_finished`` of ``task``."""
        return [
            (args["step"], args["outcome"], args["attempt"])
            for name, args in self.of(task)
            if name == "step_finished"
        ]


@pytest.fixture
def heard() -> Iterator[Heard]:
    heard = Heard()
    receivers = []
    for name in signals.__all__:
        receiver = heard.receiver(name)
        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield heard
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_a_task_s_life_is_told_in_order_after_each_commit(backend, heard):
    task = submit("three-steps", {"n": 1})
    assert run_until_idle() == 1
    assert heard.names(task) == [
        "task_submitted", "task_started",
        "step_started", "step_finished", "step_started", "step_finished",
        "step_started", "step_finished", "task_finished",
    ]  # fmt: skip
    assert heard.steps(task) == [
        ("first", "completed", 1), ("second", "completed", 1), ("third", "completed", 1)
    ]  # fmt: skip
    told = dict(heard.of(task))
    assert told["task_started"] == {"worker": "run_until_idle"}
    assert told["task_finished"] == {"status": "completed"}
    finished = [args for name, args in heard.of(task) if name == "step_finished"]
    assert all(a["duration"] >= 0 and a["error"] == "" and a["worker"] for a in finished)
    # The task a receiver gets is as the commit left it.
    ended = next(args["task"] for name, args in heard.calls if name == "task_finished")
    assert ended.status == TaskStatus.COMPLETED


class Rollback(Exception):
    pass


def rolled_back(backend: str, action: Any) -> None:
    """Run ``action`` in a transaction that then rolls back."""
    with contextlib.suppress(Rollback), transaction.atomic(using=backend):
        action()
        raise Rollback


def test_nothing_is_told_of_a_submit_that_rolled_back(backend, heard):
    def submit_and_look() -> None:
        submit("three-steps", {})
        assert heard.calls == []  # not before the commit either

    rolled_back(backend, submit_and_look)
    assert heard.calls == []
    with transaction.atomic(using=backend):
        task = submit("three-steps", {})
        assert heard.calls == []
    assert heard.names(task) == ["task_submitted"]


def test_an_idempotent_submit_tells_once(backend, heard):
    task = submit("three-steps", {}, idempotency_key="once")
    again = submit("three-steps", {}, idempotency_key="once")
    assert again.id == task.id
    assert heard.names(task) == ["task_submitted"]


def test_a_failure_and_a_retry_are_told_with_their_outcome(backend, heard):
    failing = submit("breaks-second", {})
    flaky = submit("flaky", {"succeed_on": 2})
    run_until_idle()
    make_due(flaky, backend)
    run_until_idle()
    assert heard.steps(failing) == [("first", "completed", 1), ("second", "failed", 1)]
    assert dict(heard.of(failing))["task_finished"] == {"status": "failed"}
    failed = [a for n, a in heard.of(failing) if n == "step_finished" and a["outcome"] == "failed"]
    assert failed[0]["error"] == "ValueError: second failed on purpose"
    assert heard.steps(flaky) == [
        ("unreliable", "retrying", 1), ("unreliable", "completed", 2), ("after", "completed", 1)
    ]  # fmt: skip
    assert heard.names(flaky).count("task_started") == 1  # the retry's claim is not a start


def test_a_wait_is_told_and_the_signal_that_ends_it_resumes_the_step(backend, heard):
    task = submit("approval", {})
    run_until_idle()
    assert heard.steps(task) == [("reserve", "completed", 1), ("decide", "waiting", 1)]
    assert dict(heard.of(task))["task_waiting"] == {"waiting_for": "approval"}
    send_signal(task.id, "approval", "yes")
    run_until_idle()
    assert heard.steps(task)[2:] == [("decide", "completed", 1), ("finish", "completed", 1)]
    assert heard.names(task).count("task_started") == 1


def test_operators_moves_are_told(backend, heard):
    failing = submit("breaks-second", {})
    pending = submit("three-steps", {}, delay=3600)
    run_until_idle()
    Task.objects.using(backend).get(id=failing.id).requeue()
    run_until_idle()
    Task.objects.using(backend).get(id=failing.id).requeue(from_start=True)
    pending.cancel()
    requeued = [args for name, args in heard.of(failing) if name == "task_requeued"]
    assert requeued == [
        {"from_start": False, "step": "second"},
        {"from_start": True, "step": "first"},
    ]
    assert heard.of(pending)[-1] == ("task_finished", {"status": "cancelled"})


def test_an_operator_s_move_that_rolled_back_is_not_told(backend, heard):
    pending = submit("three-steps", {}, delay=3600)
    rolled_back(backend, pending.cancel)
    assert heard.names(pending) == ["task_submitted"]
    assert Task.objects.using(backend).get(id=pending.id).status == TaskStatus.PENDING


def test_a_skipped_step_is_told(backend, heard):
    task = submit("conditional", {"insure": True})
    run_until_idle()
    outcomes = {step: outcome for step, outcome, _ in heard.steps(task)}
    assert outcomes == {
        "quote": "completed", "insurance": "completed", "upgrade": "skipped",
        "notify": "completed", "done": "completed",
    }  # fmt: skip


def test_a_receiver_that_raises_is_logged_and_breaks_nothing(backend, heard, caplog):
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("a broken receiver")

    signals.step_finished.connect(broken, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="salvador_django"):
            task = submit("three-steps", {})
            run_until_idle()
    finally:
        signals.step_finished.disconnect(broken)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert heard.steps(task) == [
        ("first", "completed", 1), ("second", "completed", 1), ("third", "completed", 1)
    ]  # fmt: skip
    raised = [r for r in caplog.records if "receiver of a signal raised" in r.getMessage()]
    assert len(raised) == 3
    assert "a broken receiver" in raised[0].getMessage()


def test_children_are_told_as_submitted(backend, heard):
    parent = submit("fan-out", {"count": 2})
    run_until_idle()
    children = list(Task.objects.using(backend).filter(parent_id=parent.id))
    assert len(children) == 2
    for child in children:
        assert heard.names(child)[0] == "task_submitted"
        assert dict(heard.of(child))["task_finished"] == {"status": "completed"}
