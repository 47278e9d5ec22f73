"""Waits inside steps: signals, timers, events, pause and resume (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from salvador_django import TaskStatus, get_event, send_signal, submit
from salvador_django.exceptions import InvalidTransition, NotInStep, PayloadError
from salvador_django.models import Event, Signal, StepRun, Task, Wait
from salvador_django.status import CompensationStatus, WaitKind, WaitOutcome
from salvador_django.testing import advance_timers, run_until_idle
from tests.testapp.models import Event as StepStarted


def runs(task: Task, step: str) -> int:
    """How many times ``step`` of ``task`` started."""
    return StepStarted.objects.using(task._state.db).filter(task_id=task.id, step=step).count()


def reloaded(task: Task) -> Task:
    task.refresh_from_db()
    return task


def test_a_waiting_task_holds_no_claim_and_resumes_when_its_signal_arrives(backend):
    task = submit("approval", {})
    run_until_idle()
    task = reloaded(task)
    assert (task.status, task.step_name, task.waiting_for) == (
        TaskStatus.WAITING, "decide", "approval",
    )  # fmt: skip
    assert (task.claimed_by, task.lease_expires_at, task.wake_at) == (None, None, None)
    assert task.attempt == 0  # a wait is not an attempt
    assert run_until_idle() == 0  # waiting tasks are not due

    signal = send_signal(task.id, "approval", {"by": "ann"})
    assert reloaded(task).status == TaskStatus.PENDING
    assert run_until_idle() == 1
    task = reloaded(task)
    assert task.status == TaskStatus.COMPLETED
    assert task.state == {"reserved": True, "answer": {"by": "ann"}}
    assert runs(task, "decide") == 2  # the waiting step ran again from its beginning
    assert runs(task, "reserve") == 1  # a completed step never does
    signal.refresh_from_db()
    assert signal.consumed_at is not None
    assert signal.consumed_by == "decide#1"
    wait = Wait.objects.using(backend).get(task=task)
    assert (wait.kind, wait.name, wait.outcome, wait.payload) == (
        WaitKind.SIGNAL, "approval", WaitOutcome.RECEIVED, {"by": "ann"},
    )  # fmt: skip
    output = StepRun.objects.using(backend).get(task=task, name="decide").output
    assert output == {"by": "ann"}


def test_a_signal_sent_before_the_wait_is_kept_for_it(backend):
    task = submit("approval", {})
    send_signal(task.id, "approval", "yes")
    run_until_idle()
    task = reloaded(task)
    assert (task.status, task.state["answer"]) == (TaskStatus.COMPLETED, "yes")
    assert runs(task, "decide") == 1  # it never had to wait


def test_waits_replay_in_order_and_signals_are_first_in_first_out(backend):
    task = submit("several-waits", {"sleep": 30})
    run_until_idle()
    send_signal(task.id, "item", 1)
    run_until_idle()  # takes item 1, waits for the second
    assert reloaded(task).waiting_for == "item"
    send_signal(task.id, "other", "early")  # kept until its wait
    send_signal(task.id, "item", 2)
    send_signal(task.id, "item", 3)  # left for a later wait
    run_until_idle()
    task = reloaded(task)
    assert (task.status, task.waiting_for) == (TaskStatus.WAITING, "")  # sleeping
    assert task.wake_at is not None
    assert advance_timers(29) == 0
    assert advance_timers(2) == 1
    run_until_idle()
    task = reloaded(task)
    assert task.status == TaskStatus.COMPLETED
    assert StepRun.objects.using(backend).get(task=task).output == [1, 2, "early"]
    assert runs(task, "collect") == 4
    undelivered = Signal.objects.using(backend).filter(task=task, consumed_at__isnull=True)
    assert list(undelivered.values_list("payload", flat=True)) == [3]
    waits = Wait.objects.using(backend).filter(task=task).order_by("position")
    assert list(waits.values_list("outcome", flat=True)) == [
        "received", "received", "slept", "received",
    ]  # fmt: skip


def test_a_timeout_raises_wait_timeout_which_is_not_retried(backend):
    task = submit("approval", {"timeout": 60})
    run_until_idle()
    task = reloaded(task)
    assert task.wake_at is not None
    assert advance_timers(59) == 0
    send_signal(task.id, "unrelated")  # wakes nothing
    assert reloaded(task).status == TaskStatus.WAITING
    assert advance_timers(timedelta(seconds=2)) == 1
    run_until_idle()
    task = reloaded(task)
    assert task.status == TaskStatus.FAILED  # after the compensation of "reserve"
    assert task.error.startswith("WaitTimeout: No signal 'approval' arrived before ")
    assert task.compensation == CompensationStatus.COMPLETED
    failed = StepRun.objects.using(backend).filter(task=task, name="decide", status="failed")
    assert failed.count() == 1


def test_a_step_may_catch_wait_timeout_and_go_on(backend):
    task = submit("times-out", {"timeout": 5})
    run_until_idle()
    advance_timers(5)
    run_until_idle()
    task = reloaded(task)
    assert task.status == TaskStatus.COMPLETED
    assert StepRun.objects.using(backend).get(task=task).output == "no answer"


def test_sleep_until_a_time_already_past_does_not_wait(backend):
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    task = submit("sleeps-until", {"until": past})
    run_until_idle()
    assert reloaded(task).status == TaskStatus.COMPLETED
    later = submit("sleeps-until", {"until": (timezone.now() + timedelta(hours=1)).isoformat()})
    run_until_idle()
    later = reloaded(later)
    assert later.status == TaskStatus.WAITING
    assert abs((later.wake_at - timezone.now()) - timedelta(hours=1)) < timedelta(seconds=5)


def test_events_are_published_with_the_step_s_commit(backend):
    task = submit("approval", {})
    with pytest.raises(Event.DoesNotExist, match="has published no event 'progress'"):
        get_event(task.id, "progress")
    assert get_event(task.id, "progress", default=None) is None
    run_until_idle()
    assert get_event(task.id, "progress") == "waiting for approval"
    send_signal(task.id, "approval", True)
    run_until_idle()
    assert get_event(task.id, "progress", timeout=1) == "decided"


def test_pause_and_resume_a_waiting_task(backend):
    task = submit("approval", {"timeout": 60})
    run_until_idle()
    task = reloaded(task)
    task.pause()
    assert (task.status, task.waiting_for) == (TaskStatus.PAUSED, "approval")
    send_signal(task.id, "approval", "while paused")  # kept, wakes nothing
    assert advance_timers(120) == 0  # a paused task's timer does not fire
    assert reloaded(task).status == TaskStatus.PAUSED
    with pytest.raises(InvalidTransition, match="it is paused"):
        task.pause()
    task.resume()
    assert task.status == TaskStatus.PENDING
    run_until_idle()
    task = reloaded(task)
    # The signal was there: it wins over the timeout that passed meanwhile.
    assert (task.status, task.state["answer"]) == (TaskStatus.COMPLETED, "while paused")


def test_a_resumed_task_whose_timeout_passed_times_out(backend):
    task = submit("times-out", {"timeout": 5})
    run_until_idle()
    task = reloaded(task)
    task.pause()
    advance_timers(10)
    task.resume()
    run_until_idle()
    assert StepRun.objects.using(backend).get(task=task).output == "no answer"


def test_a_running_task_pauses_after_its_step(backend):
    task = submit("approval", {})
    claimed = Task.objects.using(backend).claim(["approval"], "worker:1", 60)
    assert [t.id for t in claimed] == [task.id]
    task.pause()
    assert task.pause_requested
    from salvador_django.engine import Engine
    from salvador_django.leases import Lease

    Engine(database=backend, worker_name="w").run(claimed[0], Lease(task.id, "worker:1"))
    task = reloaded(task)
    assert (task.status, task.step_name, task.pause_requested_at) == (
        TaskStatus.PAUSED, "decide", None,
    )  # fmt: skip
    task.resume()
    run_until_idle()
    assert reloaded(task).status == TaskStatus.WAITING


def test_cancelling_a_waiting_task_runs_its_compensations(backend):
    task = submit("approval", {})
    run_until_idle()
    task = reloaded(task)
    task.cancel()
    assert (task.status, task.compensation) == (TaskStatus.PENDING, CompensationStatus.RUNNING)
    run_until_idle()
    task = reloaded(task)
    assert (task.status, task.compensation) == (TaskStatus.CANCELLED, CompensationStatus.COMPLETED)
    assert runs(task, "undo-reserve") == 1
    with pytest.raises(InvalidTransition, match="it is cancelled"):
        send_signal(task.id, "approval")


def test_a_paused_task_without_compensations_is_cancelled_at_once(backend):
    task = submit("times-out", {})
    run_until_idle()
    task = reloaded(task)
    task.pause()
    task.cancel()
    assert (task.status, task.waiting_for, task.wake_at) == (TaskStatus.CANCELLED, "", None)


def test_requeue_keeps_the_waits_of_the_failed_step_and_from_start_clears_them(backend):
    task = submit("approval", {"timeout": 5})
    run_until_idle()
    advance_timers(6)
    run_until_idle()
    task = reloaded(task)
    assert task.status == TaskStatus.FAILED
    # As if it had no compensation to run:
    Task.objects.using(backend).filter(id=task.id).update(compensation="")
    task.requeue()  # the recorded timeout stays: the step times out again
    run_until_idle()
    assert reloaded(task).error.startswith("WaitTimeout")
    assert Wait.objects.using(backend).filter(task=task).exists()
    Task.objects.using(backend).filter(id=task.id).update(compensation="")
    task.requeue(from_start=True)
    assert not Wait.objects.using(backend).filter(task=task).exists()
    run_until_idle()
    assert reloaded(task).status == TaskStatus.WAITING


def test_a_signal_is_stored_in_the_caller_s_transaction(backend):
    task = submit("approval", {})
    run_until_idle()

    def send_then_fail() -> None:
        with transaction.atomic(using=backend):
            send_signal(task.id, "approval", 1)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        send_then_fail()
    assert not Signal.objects.using(backend).filter(task=task).exists()
    assert reloaded(task).status == TaskStatus.WAITING


def test_a_second_signal_with_the_same_idempotency_key_is_ignored(backend):
    task = submit("several-waits", {})
    first = send_signal(task.id, "item", 1, idempotency_key="k")
    again = send_signal(task.id, "item", 2, idempotency_key="k")
    assert again.pk == first.pk
    assert (first.created, again.created) == (True, False)
    assert Signal.objects.using(backend).filter(task=task).count() == 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda t: t.wait_for("x"), NotInStep, r"task\.wait_for\(\) can only be called inside"),
        (lambda t: t.sleep(1), NotInStep, r"task\.sleep\(\)"),
        (lambda t: t.set_event("k", 1), NotInStep, r"task\.set_event\(\)"),
        (lambda t: send_signal(t.id, ""), PayloadError, "A signal's name must be a non-empty"),
        (lambda t: send_signal(t.id, "x" * 201), PayloadError, "at most 200 characters"),
        (lambda t: send_signal(t.id, "a\x00b"), PayloadError, "NUL"),
        (lambda t: send_signal(t.id, "x", object()), PayloadError, "not JSON-serialisable"),
        (lambda t: send_signal(t.id, "x", "y" * 2_000_000), PayloadError, "MAX_BODY_BYTES"),
        (lambda t: send_signal(t.id, "x", idempotency_key=""), PayloadError, "idempotency_key"),
        (lambda t: send_signal("not-a-uuid", "x"), Task.DoesNotExist, "is not a task id"),
        (
            lambda t: send_signal("00000000-0000-0000-0000-000000000000", "x"),
            Task.DoesNotExist,
            "does not exist",
        ),
        (lambda t: t.resume(), InvalidTransition, "Cannot resume task .*: it is pending"),
        (lambda t: get_event(t.id, "k", timeout=0), PayloadError, "positive number"),
        (lambda t: get_event(t.id, "k", timeout=-1), PayloadError, "positive number"),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(backend, call, error, message):
    task = submit("approval", {})
    with pytest.raises(error, match=message):
        call(task)
    assert not Signal.objects.using(backend).filter(task=task).exists()
    assert reloaded(task).status == TaskStatus.PENDING


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"call": "wait_for", "name": ""}, "A signal's name must be a non-empty string"),
        ({"call": "wait_for", "name": "x", "timeout": 0}, "timeout must be a positive number"),
        ({"call": "wait_for", "name": "x", "timeout": -5}, "timeout must be a positive number"),
        ({"call": "sleep", "duration": 0}, "duration must be a positive number"),
        ({"call": "sleep", "duration": "1"}, "duration must be a positive number"),
        ({"call": "sleep_until", "until": "2030-01-01T00:00:00"}, "timezone-aware"),
        ({"call": "set_event", "key": "k" * 201}, "An event's key must be"),
    ],
)
def test_bad_input_to_a_wait_fails_the_task_at_once(backend, body, message):
    task = submit("bad-wait", body)
    run_until_idle()
    task = reloaded(task)
    assert task.status == TaskStatus.FAILED
    assert task.error.startswith("InvalidWait: ")
    assert message in task.error
    assert StepRun.objects.using(backend).filter(task=task).count() == 1  # not retried
    assert not Wait.objects.using(backend).filter(task=task).exists()


def test_waits_that_change_order_between_runs_fail_the_task(backend):
    task = submit("changes-waits", {})
    run_until_idle()
    send_signal(task.id, "a")
    run_until_idle()
    task = reloaded(task)
    assert task.status == TaskStatus.FAILED
    assert "WaitsChanged: Step 'wait' waited for signal 'a' at its wait #1" in task.error


def test_a_requeue_of_a_compensated_task_forgets_its_waits(backend):
    from salvador_django.maintenance import requeue_tasks

    task = submit("approval", {"timeout": 5})
    run_until_idle()
    advance_timers(6)
    run_until_idle()
    task = reloaded(task)
    assert (task.status, task.compensation) == (TaskStatus.FAILED, CompensationStatus.COMPLETED)
    requeue_tasks(Task.objects.using(backend).filter(id=task.id))
    assert not Wait.objects.using(backend).filter(task=task).exists()
    run_until_idle()
    assert reloaded(task).status == TaskStatus.WAITING  # waits afresh, not timed out again


def test_get_event_is_woken_when_a_step_publishes(backend):
    import threading
    import time

    from django.db import connections

    task = submit("approval", {})

    def run_soon() -> None:
        try:
            time.sleep(0.3)
            run_until_idle()
        finally:
            connections.close_all()

    if backend != "postgres":
        pytest.skip("in-test transactions: another thread sees the rows on PostgreSQL only")
    thread = threading.Thread(target=run_soon)
    thread.start()
    try:
        assert get_event(task.id, "progress", timeout=10) == "waiting for approval"
    finally:
        thread.join()


def test_resume_withdraws_a_pause_requested_of_a_task_pending_again(backend):
    task = submit("approval", {})
    claimed = Task.objects.using(backend).claim(["approval"], "worker:1", 60)
    assert [t.id for t in claimed] == [task.id]
    task.pause()  # running: requested
    Task.objects.using(backend).filter(id=task.id).update(status=TaskStatus.PENDING)  # reaped
    task.resume()
    assert (task.status, task.pause_requested_at) == (TaskStatus.PENDING, None)
    run_until_idle()
    assert reloaded(task).status == TaskStatus.WAITING  # not paused


def test_a_pause_withdrawn_before_the_step_ends_lets_the_task_go_on(backend):
    from salvador_django import transitions
    from salvador_django.engine import Engine
    from salvador_django.leases import Lease

    task = submit("approval", {})
    claimed = Task.objects.using(backend).claim(["approval"], "worker:1", 60)[0]
    task.pause()  # requested: it pauses after "reserve"
    engine = Engine(database=backend, worker_name="w")
    move = engine.writes.move

    def resumed_just_before(made: transitions.Move, *args: Any, **kwargs: Any) -> bool:
        if made is transitions.PAUSE_AFTER_STEP:
            task.resume()  # the operator, between the checkpoint and the pause
        return bool(move(made, *args, **kwargs))

    engine.writes.move = resumed_just_before
    engine.run(claimed, Lease(task.id, "worker:1"))
    assert reloaded(task).status == TaskStatus.WAITING  # it went on to wait, not paused


def test_a_cancel_that_comes_while_a_task_pauses_wins(backend):
    from salvador_django.engine import Engine
    from salvador_django.leases import Lease

    task = submit("times-out", {})
    claimed = Task.objects.using(backend).claim(["times-out"], "worker:1", 60)[0]
    task.pause()
    task.cancel()  # requested too, while it runs
    claimed.pause_requested_at = reloaded(task).pause_requested_at
    Engine(database=backend, worker_name="w").run(claimed, Lease(task.id, "worker:1"))
    assert reloaded(task).status == TaskStatus.CANCELLED
