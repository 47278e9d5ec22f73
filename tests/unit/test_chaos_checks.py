"""The fault-injection run's checks catch what they are meant to catch."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from benchmarks.faults.checks import Effect, Execution, Fault, Records, check
from benchmarks.faults.fan_out_checks import (
    CHILDREN,
    STEP,
    Child,
    FanOutRecords,
    Parent,
    ParentStart,
    Seen,
    check_fan_out,
    child_key,
    expected_results,
)
from benchmarks.faults.fan_out_records import read_log
from benchmarks.faults.injection import junk, plan_faults, stalls_in, uncaught
from benchmarks.faults.waiting_checks import (
    SIGNALS,
    Failure,
    Pause,
    Received,
    Sent,
    SignalRow,
    StepStart,
    Stuck,
    WaitRecords,
    WaitRow,
    Woke,
    backlog,
    check_waits,
    first_claims,
    first_worker_up,
)
from salvador_django.queues.redis_scripts import is_task_id

TASK = "t1"


def execution(t: float, step: int, token: str = "a", pid: int = 1, attempt: int = 1) -> Execution:
    claimed = {"a": 0.0, "b": 10.0, "c": 20.0}[token]
    return Execution(t, TASK, step, attempt, pid, token, claimed)


def records(
    executions: list[Execution],
    effects: list[Effect] | None = None,
    *,
    faults: list[Fault] | None = None,
    status: str = "completed",
    failed: set[tuple[str, int, int]] | None = None,
) -> Records:
    if effects is None:  # each step's effect by the last claim that ran it
        last = {e.step: e for e in executions}
        effects = [Effect(TASK, s, e.token, e.pid, e.t + 0.1) for s, e in last.items()]
    return Records(
        statuses={TASK: status},
        errors={},
        events={TASK: [0.0, 30.0]},
        executions=executions,
        effects=effects,
        failed_attempts=failed or set(),
        faults=faults or [],
    )


def test_a_clean_run_passes():
    verdict = check(records([execution(1, 0), execution(2, 1), execution(3, 2)]))
    assert verdict.passed, verdict.problems
    assert sum(verdict.duplicates.values()) == 0


def test_a_replayed_step_is_explained_by_the_kill_of_its_worker():
    runs = [
        execution(1, 0),
        execution(2, 1),
        execution(11, 1, "b", pid=2),
        execution(12, 2, "b", 2),
    ]
    kill = Fault("kill", 3, 3, pid=1)
    verdict = check(records(runs, faults=[kill]))
    assert verdict.passed, verdict.problems
    assert verdict.duplicates == {"worker killed": 1}


def test_a_replayed_step_without_a_cause_fails():
    runs = [
        execution(1, 0),
        execution(2, 1),
        execution(11, 1, "b", pid=2),
        execution(12, 2, "b", 2),
    ]
    verdict = check(records(runs, faults=[Fault("kill", 3, 3, pid=99)]))  # another worker
    assert not verdict.passed
    assert "1 duplicate execution(s) unexplained" in verdict.problems[0]


def test_a_pause_of_its_worker_between_its_claim_and_its_step_explains_a_replay():
    # Paused past its lease after the claim (at 0), it resumed and started step one at
    # 5; its claim had been reaped, and claim b ran the step again.
    runs = [execution(5, 0), execution(11, 0, "b", pid=2), execution(12, 1, "b", 2)]
    runs.append(execution(13, 2, "b", 2))
    verdict = check(records(runs, faults=[Fault("stop", 0.5, 4.98, pid=1)]))
    assert verdict.passed, verdict.problems
    assert verdict.duplicates == {"worker stopped past its lease": 1}


def test_on_sqlite_another_worker_paused_explains_a_replay():
    # Paused in a transaction, it held the write lock: the heartbeats of pid 1 waited past
    # the lease, and a sweep reaped its claim when the pause ended.
    runs = [execution(1, 0), execution(2, 1), execution(11, 1, "b", pid=2)]
    runs.append(execution(12, 2, "b", 2))
    pause = Fault("stop", 3, 7.5, pid=99)
    assert not check(records(runs, faults=[pause])).passed  # PostgreSQL: no excuse
    sqlite = records(runs, faults=[pause])
    sqlite.stop_stalls_all = True
    verdict = check(sqlite)
    assert verdict.passed, verdict.problems
    assert verdict.duplicates == {"another worker stopped (SQLite's write lock held)": 1}
    sqlite.faults = [replace(pause, start=12.5, end=17)]  # after the replay: no excuse
    assert not check(sqlite).passed


def test_a_late_heartbeat_its_worker_logged_explains_a_replay():
    # The heartbeat of pid 1 renewed late (its lease had expired at 3): claim b replayed.
    runs = [execution(1, 0), execution(2, 1), execution(11, 1, "b", pid=2)]
    runs.append(execution(12, 2, "b", 2))
    data = records(runs)
    data.stalls = [Fault("stall", 0.5, 12.5, pid=99)]  # another worker's: no excuse
    assert not check(data).passed
    data.stalls = [Fault("stall", 0.5, 12.5, pid=1)]
    verdict = check(data)
    assert verdict.passed, verdict.problems
    assert verdict.duplicates == {"its heartbeat late (logged by the worker)": 1}


def test_the_late_renewals_are_read_from_a_workers_output():
    log = """2026-12-04 10:21:47,649 22119 salvador-3 salvador: dropped 2 element(s)
2026-12-04 10:21:48,250 22119 salvador-maintenance salvador: leases renewed 2.5s after the \
last renewal (the write took 1.9s; lease 3s); 1 of 2 lost
"""
    (stall,) = stalls_in(log, 22119)
    logged = time.mktime((2026, 12, 4, 10, 21, 48, 0, 0, -1)) + 0.25
    assert stall == Fault("stall", logged - 2.5, logged, 22119)


def test_a_retry_explains_a_second_attempt():
    runs = [execution(1, 0), execution(11, 0, "b", attempt=2), execution(12, 1, "b")]
    runs.append(execution(13, 2, "b"))
    verdict = check(records(runs, failed={(TASK, 0, 1)}))
    assert verdict.passed, verdict.problems
    assert verdict.duplicates == {"retried after the step failed": 1}


def test_a_completed_step_running_again_is_out_of_order():
    # Claim a reached step 2, so steps 0 and 1 were checkpointed; claim b runs step 0.
    runs = [execution(1, 0), execution(2, 1), execution(3, 2), execution(11, 0, "b", pid=2)]
    verdict = check(records(runs, faults=[Fault("kill", 4, 4, pid=1)]))
    assert any("ran steps out of order" in p for p in verdict.problems)


def test_an_effect_committed_after_the_lease_was_lost_fails():
    # Claim a ran step 1 and was paused; claim b took over at step 1 and finished. Then
    # a's commit of step 1 went through too: two effects, one written too late.
    runs = [execution(1, 0), execution(2, 1), execution(11, 1, "b", 2), execution(12, 2, "b", 2)]
    effects = [
        Effect(TASK, 0, "a", 1, 1.1),
        Effect(TASK, 1, "b", 2, 11.1),
        Effect(TASK, 1, "a", 1, 15.0),
        Effect(TASK, 2, "b", 2, 12.1),
    ]
    verdict = check(records(runs, effects, faults=[Fault("stop", 3, 14, pid=1)]))
    assert any("without exactly one committed effect" in p for p in verdict.problems)
    assert any("written after their lease was lost" in p for p in verdict.problems)


def test_a_step_started_by_a_paused_claim_is_counted_and_explained():
    runs = [execution(1, 0), execution(11, 0, "b", 2), execution(12, 1, "b", 2)]
    runs += [execution(13, 1, "a"), execution(14, 2, "b", 2)]  # a woke up and started step 1
    effects = [Effect(TASK, s, "b", 2, 11.1 + s) for s in range(3)]
    verdict = check(records(runs, effects, faults=[Fault("stop", 2, 12.5, pid=1)]))
    assert verdict.after_lease_loss == {"worker stopped past its lease": 1}


def test_a_task_not_completed_or_missing_a_step_fails():
    verdict = check(records([execution(1, 0), execution(2, 1)], status="failed"))
    assert any("1 task(s) not completed" in p for p in verdict.problems)
    assert any("without every step observed" in p for p in verdict.problems)


def test_a_worker_that_died_on_its_own_fails():
    runs = [execution(1, 0), execution(2, 1), execution(3, 2)]
    data = records(runs)
    data.dead_workers = ["pid 7 exited with 1"]
    assert any("died without being killed" in p for p in check(data).problems)


def test_a_worker_thread_ended_by_an_exception_fails():
    data = records([execution(1, 0), execution(2, 1), execution(3, 2)])
    data.dead_threads = ["pid 7: thread salvador-maintenance: ValueError: x"]
    problems = check(data).problems
    assert any("1 worker thread(s) ended by an uncaught exception" in p for p in problems)


def test_the_threads_an_uncaught_exception_ended_are_read_from_a_workers_output():
    log = """2026-12-04 10:21:47,649 22119 salvador-3 salvador: dropped 2 element(s)
Exception in thread salvador-maintenance:
Traceback (most recent call last):
  File "/x/salvador_django/worker.py", line 274, in _maintain
2026-12-04 10:21:47,650 22119 salvador-1 salvador: Redis unavailable (while popping)
    self.recover()
UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte
2026-12-04 10:21:48,001 22119 salvador-0 salvador: task t (chaos) interrupted
Traceback (most recent call last):
  File "/x/salvador_django/worker.py", line 240, in _run_one
ValueError: logged, not uncaught
"""
    assert uncaught(log) == [
        "thread salvador-maintenance: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff "
        "in position 0: invalid start byte"
    ]


def test_recovery_is_the_longest_wait_across_a_fault():
    data = records([execution(1, 0), execution(2, 1), execution(7.5, 2, "b", 2)])
    data.faults = [Fault("kill", 2.5, 2.5, pid=1)]
    assert check(data).recovery == {"kill": 5.0}


def test_garbage_is_planned_for_redis_runs_only():
    def kinds(*, redis: bool) -> Counter[str]:
        plan = plan_faults(random.Random(7), 40.0, lease_seconds=3.0, redis=redis, postgres=True)
        assert all(0 <= p.at < 40.0 for p in plan)
        return Counter(p.kind for p in plan)

    assert kinds(redis=True)["garbage"] >= 2
    assert "garbage" not in kinds(redis=False)


def test_junk_covers_what_the_redis_queue_must_survive():
    rng = random.Random(3)
    samples = [junk(rng) for _ in range(500)]
    assert sum(is_task_id(s) for s in samples) > 10  # ids of no task
    assert sum(not is_task_id(s) for s in samples) > 300
    assert any(_not_utf8(s) for s in samples)
    assert any(len(s) > 10_000 for s in samples)
    assert any(b"\n" in s for s in samples)


def _not_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return True
    return False


# -- the waiting workflow ------------------------------------------------------------------


def payload(number: int) -> str:
    return f'{{"signal": {number}}}'


def wait_records(**changes: Any) -> WaitRecords:
    """One task of the waiting workflow that went well: ``second`` timed out first."""
    sent = [
        Sent(TASK, name, f"k{n}", payload(n), again=False, outcome="sent", signal=n + 1)
        for n, name in enumerate(SIGNALS)
    ]
    sent.append(Sent(TASK, "first", "k0", payload(0), again=True, outcome="sent", signal=1))
    takers = ["first#1", "second#2", "items#1", "items#3"]
    signals = [
        SignalRow(n + 1, TASK, name, f"k{n}", payload(n), 1.0 + 10 * n, 2.0 + 10 * n, takers[n])
        for n, name in enumerate(SIGNALS)
    ]
    received = [
        Received(TASK, taker.split("#")[0], int(taker.split("#")[1]), SIGNALS[n], payload(n))
        for n, taker in enumerate(takers)
    ]
    waits = [
        WaitRow(TASK, "first", 1, "signal", "first", None, 1.5, "received", 1),
        WaitRow(TASK, "first", 2, "sleep", "", 10.0, 2.0, "slept"),
        WaitRow(TASK, "second", 1, "signal", "second", 20.0, 15.0, "timed out"),
        WaitRow(TASK, "second", 2, "signal", "second", None, 20.1, "received", 2),
        WaitRow(TASK, "items", 1, "signal", "item", None, 20.5, "received", 3),
        WaitRow(TASK, "items", 2, "sleep", "", 30.0, 25.0, "slept"),
        WaitRow(TASK, "items", 3, "signal", "item", None, 30.1, "received", 4),
    ]
    woke = [woken("first", 2, "slept", 10.05), woken("second", 1, "timed out", 20.02)]
    woke.append(woken("items", 2, "slept", 30.01))
    fields = {
        "statuses": {TASK: "completed"},
        "waiting_for": {TASK: ""},
        "sent": sent,
        "signals": signals,
        "received": received,
        "waits": waits,
        "woke": woke,
        "starts": [StepStart(TASK, step, 1, t) for step, t in [("first", 10.06), ("items", 30.02)]],
        "late_limit": 5.0,
    }
    return WaitRecords(**{**fields, **changes})


def woken(step: str, position: int, outcome: str, fired: float, ran: float | None = None) -> Woke:
    ran = fired + 0.05 if ran is None else ran
    return Woke(TASK, step, position, outcome, ran, pid=1, t=ran, due=fired, claimed=fired)


def problems_of(data: WaitRecords) -> list[str]:
    return check_waits(data).problems


def test_a_waiting_task_that_took_each_signal_once_passes():
    verdict = check_waits(wait_records())
    assert verdict.passed, verdict.problems
    assert verdict.moments == {"before its wait": 1, "while waited for": 2, "after a timeout": 1}
    assert verdict.timers()["count"] == 3


def test_a_signal_consumed_by_another_wait_than_the_one_that_returned_it_fails():
    data = wait_records()
    data.signals[2] = replace(data.signals[2], consumed_by="items#3")
    assert any("1 wait(s) returned a signal not consumed by them" in p for p in problems_of(data))


def test_two_waits_that_returned_the_same_signal_fail():
    data = wait_records()
    data.received[3] = replace(data.received[3], payload=payload(2))  # items#3 got #3 too
    problems = problems_of(data)
    assert any("1 signal(s) returned by two waits" in p for p in problems)
    assert any("1 signal(s) consumed that no wait returned" in p for p in problems)


def test_a_wait_whose_row_names_another_signal_fails():
    data = wait_records()
    data.waits[4] = replace(data.waits[4], signal=4)
    assert any("its Wait row says #4" in p for p in problems_of(data))


def test_a_signal_sent_again_with_its_key_and_stored_twice_fails():
    data = wait_records()
    data.signals.append(SignalRow(5, TASK, "first", "k0", payload(0), 3.0, None, ""))
    problems = problems_of(data)
    assert any("1 signal(s) sent not stored exactly once" in p for p in problems)
    assert any("1 signal(s) never consumed" in p for p in problems)


def test_a_signal_never_consumed_or_never_sent_fails():
    data = wait_records()
    data.signals.append(SignalRow(5, TASK, "item", "k9", payload(9), 3.0, None, ""))
    problems = problems_of(data)
    assert any("1 signal(s) never consumed" in p for p in problems)
    assert any("1 signal(s) stored that the run did not send" in p for p in problems)


def test_a_send_that_failed_fails_but_a_second_send_refused_after_the_end_does_not():
    data = wait_records()
    data.sent.append(Sent(TASK, "item", "k3", payload(3), again=True, outcome="refused"))
    assert problems_of(data) == []
    data.sent[1] = replace(data.sent[1], outcome="OperationalError('gone')")
    assert any("1 signal send(s) failed" in p for p in problems_of(data))


def test_waits_of_one_name_that_took_their_signals_out_of_order_fail():
    data = wait_records()
    data.signals[2] = replace(data.signals[2], consumed_by="items#3")
    data.signals[3] = replace(data.signals[3], consumed_by="items#1")
    data.received[2] = replace(data.received[2], payload=payload(3))
    data.received[3] = replace(data.received[3], payload=payload(2))
    data.waits[4] = replace(data.waits[4], signal=4)
    data.waits[6] = replace(data.waits[6], signal=3)
    assert [p for p in problems_of(data) if "out of order" not in p] == []
    assert any("1 step(s) took signals out of order" in p for p in problems_of(data))


def test_a_task_left_waiting_for_a_signal_that_arrived_fails():
    data = wait_records(statuses={TASK: "waiting"}, waiting_for={TASK: "item"})
    data.signals[3] = replace(data.signals[3], consumed_at=None, consumed_by="")
    problems = problems_of(data)
    assert any("1 time(s) a task was left waiting for a signal that arrived" in p for p in problems)
    sampled = wait_records(stuck=[Stuck(25.0, TASK, "item", 4)])
    assert any("at 25.000: t1 waiting for 'item', #4 there" in p for p in problems_of(sampled))


def test_a_waiting_task_not_completed_or_short_of_signals_fails():
    data = wait_records(statuses={TASK: "failed"})
    data.received.pop()
    data.waits[6] = replace(data.waits[6], outcome="")
    problems = problems_of(data)
    assert any("1 waiting task(s) not completed: {'failed': 1}" in p for p in problems)
    assert any("1 wait(s) never ended" in p for p in problems)
    assert any("without exactly 4 signals received" in p for p in problems)


def test_a_timer_that_fired_or_restarted_its_step_early_fails():
    fired_early = wait_records()
    fired_early.woke[0] = woken("first", 2, "slept", 9.9, ran=10.1)
    ran_early = wait_records()
    ran_early.woke[1] = woken("second", 1, "timed out", 20.02, ran=19.99)
    for data in (fired_early, ran_early):
        assert any("1 timer(s) fired or restarted their step early" in p for p in problems_of(data))


def test_a_task_resumed_before_its_timer_was_due_did_not_fire_early():
    # Resumed at 9.9 (its run_after), the step ran at 10.1: the sleep was over.
    data = wait_records(pauses=[Pause(TASK, 5.0, 9.95)])
    data.woke[0] = woken("first", 2, "slept", 9.9, ran=10.1)
    assert problems_of(data) == []


def test_the_earliest_run_that_saw_a_timer_end_is_the_one_checked():
    data = wait_records()
    data.woke.append(woken("first", 2, "slept", 10.05, ran=40.0))  # a replay, later
    assert check_waits(data).timers()["restarted"]["max"] < 1


def test_a_timer_that_fired_late_fails_unless_the_database_was_down():
    data = wait_records()
    data.woke[0] = woken("first", 2, "slept", 16.0)
    assert any("1 timer(s) more than 5s late, unexplained" in p for p in problems_of(data))
    data.faults = [Fault("postgres-restart", 12.0, 13.0)]
    verdict = check_waits(data)
    assert verdict.passed, verdict.problems
    assert verdict.late == {"fired late: PostgreSQL restarted": 1}


def test_a_step_restarted_late_after_its_timer_fails_unless_explained():
    data = wait_records()
    data.woke[0] = woken("first", 2, "slept", 10.05, ran=17.0)
    assert any("restarted 6.95s after it fired" in p for p in problems_of(data))
    killed = wait_records(faults=[Fault("kill", 12.0, 12.0, pid=1)], woke=data.woke)
    assert check_waits(killed).late == {"restarted late: worker killed": 1}
    assert problems_of(killed) == []
    another = wait_records(faults=[Fault("kill", 12.0, 12.0, pid=2)], woke=data.woke)
    assert problems_of(another) != []
    # Tasks due before it waited as long: the queue's backlog, not the timer.
    behind = wait_records(queue=[(9.0, 10.5), (10.0, 16.0)], woke=data.woke)
    assert problems_of(behind) == []
    assert check_waits(behind).late == {"restarted late: queue backlog": 1}


def test_a_pause_across_a_timer_moves_when_it_was_due():
    data = wait_records(pauses=[Pause(TASK, 8.0, 16.0)])
    data.woke[0] = woken("first", 2, "slept", 16.0, ran=16.1)
    verdict = check_waits(data)
    assert verdict.passed, verdict.problems
    assert max(verdict.fired) < 0.1


def test_a_timer_no_step_run_saw_end_fails():
    data = wait_records()
    data.woke.pop()
    assert any("1 wait(s) ended by a timer that no step run saw" in p for p in problems_of(data))


def test_the_backlog_is_how_long_tasks_due_before_a_moment_waited_after_it():
    ahead = backlog([(1.0, 2.0), (2.0, 9.0), (3.0, 3.5), (8.0, 8.5)])
    assert ahead(0.5) == 0.0
    assert ahead(1.5) == 0.5
    assert ahead(2.5) == 6.5
    assert ahead(8.0) == 1.0
    assert ahead(10.0) == 0.0


def test_a_timer_late_because_its_step_failed_and_waited_for_its_retry_is_explained():
    data = wait_records(failures=[Failure(TASK, "first", 10.5, "OperationalError: gone")])
    data.woke[0] = woken("first", 2, "slept", 16.0)  # the retry's run_after
    verdict = check_waits(data)
    assert verdict.passed, verdict.problems
    assert verdict.late == {"fired late: retried after the step failed": 1}


def test_a_timer_late_while_no_worker_was_up_is_explained():
    # Worker 1 is killed just before the timer is due; worker 2 starts its first step at 14.
    faults = [Fault("kill", 9.9, 9.9, pid=1)]
    data = wait_records(ready={1: 0.0, 2: 14.0}, faults=faults)
    data.woke[0] = woken("first", 2, "slept", 16.0)
    verdict = check_waits(data)
    assert verdict.passed, verdict.problems
    assert verdict.late == {"fired late: no worker up (killed, paused or starting)": 1}
    data.ready[3] = 5.0  # a worker up all along: the timer should have fired
    assert any("1 timer(s) more than 5s late, unexplained" in p for p in problems_of(data))


def test_the_first_worker_up_is_neither_killed_nor_paused_nor_starting():
    faults = [Fault("kill", 3.0, 3.0, pid=1), Fault("stop", 2.5, 7.0, pid=3)]
    faults.append(Fault("stop", 7.0, 8.0, pid=3))  # paused again as it resumed
    data = wait_records(ready={1: 0.0, 2: 9.0, 3: 2.0}, faults=faults)
    assert first_worker_up(data, 1.0) == 1.0
    assert first_worker_up(data, 3.5) == 8.0
    data.ready = {1: 0.0}
    assert first_worker_up(data, 3.5) is None


def test_a_claim_after_a_lost_lease_is_not_in_the_queues_backlog():
    claims = [("a", 1.0, 2.0), ("a", 1.0, 9.0), ("b", 1.5, 3.0), ("a", 10.0, 10.5)]
    assert sorted(first_claims(claims)) == [(1.0, 2.0), (1.5, 3.0), (10.0, 10.5)]


# -- the fan-out workflow ------------------------------------------------------------------


def child_run(child: str, t: float, token: str = "a", pid: int = 1) -> Execution:
    return Execution(t, child, 0, 1, pid, f"{child}-{token}", {"a": 1.0, "b": 10.0}[token])


def fan_out_records(**changes: Any) -> FanOutRecords:
    """Two parents that went well, one through map: each child ran once, at 1 s + n ms, and
    finished at 2 s + n ms; each parent resumed at 3 s."""
    parents = [
        Parent("p0", 0, True, "completed", None, expected_results(0)),
        Parent("p1", 1, False, "completed", None, expected_results(1)),
    ]
    children = [
        Child(
            f"c{p.number}-{n}",
            p.id,
            STEP,
            child_key(n, use_map=p.uses_map),
            "completed",
            p.number,
            n,
            2.0 + n / 1000,
        )
        for p in parents
        for n in range(CHILDREN)
    ]
    runs = [child_run(c.id, 1.0 + c.n / 1000) for c in children]
    effects = [Effect(c.id, 0, f"{c.id}-a", 1, 1.5) for c in children]
    executions = Records(
        statuses={c.id: "completed" for c in children},
        errors={},
        events={c.id: [0.5, 2.0] for c in children},
        executions=runs,
        effects=effects,
        failed_attempts=set(),
        faults=[],
        steps=1,
    )
    starts = [
        ParentStart(t, p.id, step, 1, token, claimed, due)
        for p in parents
        for t, step, token, claimed, due in [
            (0.1, 0, "s", 0.1, 0.0),
            (3.0, 0, "r", 3.0, 2.019),
            (3.1, 1, "r", 3.0, 2.019),
        ]
    ]
    fields = {
        "submitted": {0: "p0", 1: "p1"},
        "parents": parents,
        "children": children,
        "executions": executions,
        "starts": starts,
        "seen": [],
    }
    return FanOutRecords(**{**fields, **changes})


def fan_out_problems(data: FanOutRecords) -> list[str]:
    return check_fan_out(data).problems


def changed_child(data: FanOutRecords, child: str, **changes: Any) -> list[Child]:
    return [replace(c, **changes) if c.id == child else c for c in data.children]


def test_parents_that_got_each_child_once_and_all_results_pass():
    verdict = check_fan_out(fan_out_records())
    assert verdict.passed, verdict.problems
    assert verdict.delays()["woken"] == {"median": 0.0, "p99": 0.0, "max": 0.0}
    assert verdict.delays()["resumed"]["max"] == pytest.approx(0.981)


def test_a_second_child_for_a_key_fails():
    data = fan_out_records()
    again = replace(data.children[3], id="c0-3-again")
    problems = fan_out_problems(replace(data, children=[*data.children, again]))
    assert problems == ["1 key(s) with more than one child\n    p0 key 'item-3': 2 children"]


def test_a_key_without_a_child_or_a_child_under_another_key_fails():
    data = fan_out_records()
    moved = changed_child(data, "c1-4", key="#40")
    problems = fan_out_problems(replace(data, children=moved))
    assert "1 key(s) of a parent without a child\n    p1 key '#5'" in problems
    assert "1 child(ren) under a key their parent never gave\n    p1 step 'spread' key '#40'" in (
        problems
    )
    other_step = changed_child(data, "c0-0", parent_step="assemble")
    assert len(fan_out_problems(replace(data, children=other_step))) == 2


def test_a_child_whose_body_is_not_its_keys_fails():
    data = fan_out_records()
    swapped = changed_child(data, "c0-1", n=2)
    swapped = [replace(c, n=1) if c.id == "c0-2" else c for c in swapped]
    problems = fan_out_problems(replace(data, children=swapped))
    assert problems[0].startswith("2 child(ren) whose body is not the one of their key")


def test_a_child_of_no_parent_of_the_run_or_one_that_ran_without_a_row_fails():
    data = fan_out_records()
    orphan = replace(data.children[0], id="c9", parent=None)
    problems = fan_out_problems(replace(data, children=[*data.children, orphan]))
    assert any(p.startswith("1 child(ren) without a parent of the run") for p in problems)
    ghost = replace(data.executions, executions=[*data.executions.executions, child_run("cx", 1)])
    problems = fan_out_problems(replace(data, executions=ghost))
    assert "1 child(ren) ran without a row\n    cx" in problems


def test_a_parent_left_waiting_fails_with_its_count_and_its_childrens_statuses():
    data = fan_out_records()
    waiting = replace(data.parents[1], status="waiting", children_left=1, result=None)
    children = changed_child(data, "c1-19", status="pending", finished=None)
    executions = replace(data.executions, statuses={**data.executions.statuses, "c1-19": "pending"})
    problems = fan_out_problems(
        replace(data, parents=[data.parents[0], waiting], children=children, executions=executions)
    )
    assert (
        "1 parent(s) left unfinished\n    p1 waiting, children_left 1, "
        "children {'completed': 19, 'pending': 1}"
    ) in problems
    assert "1 child(ren) left unfinished\n    c1-19 pending (parent p1)" in problems


def test_a_parent_left_waiting_after_its_last_child_finished_fails():
    data = fan_out_records()
    stuck = replace(data.parents[0], status="waiting", children_left=0, result=None)
    problems = fan_out_problems(replace(data, parents=[stuck, data.parents[1]]))
    assert problems == [
        "1 parent(s) left unfinished\n    p0 waiting, children_left 0, children {'completed': 20}"
    ]


def test_a_parent_without_all_its_childrens_results_in_order_fails():
    data = fan_out_records()
    results = expected_results(0)
    found = []
    for wrong in ([results[1], results[0], *results[2:]], results[:-1], None):
        parent = replace(data.parents[0], result=wrong)
        found += fan_out_problems(replace(data, parents=[parent, data.parents[1]]))
    assert [p.split("\n")[1].split(": [")[0] for p in found] == [
        "    p0 (#0): first difference at 0",
        "    p0 (#0): 19 result(s)",
        "    p0 (#0): 0 result(s): None",
    ]
    assert all(p.startswith("1 parent(s) completed without their children's") for p in found)


def test_a_parent_failed_missing_or_not_submitted_fails():
    data = fan_out_records()
    failed = replace(data.parents[0], status="failed", result=None, error="ChildFailed: c0-3")
    problems = fan_out_problems(replace(data, parents=[failed, data.parents[1]]))
    assert problems[0].startswith("1 parent(s) failed or cancelled\n    p0 failed: 'ChildFailed")
    problems = fan_out_problems(replace(data, submitted={0: "p0", 1: "p1", 2: "p2"}))
    assert problems == ["1 parent(s) submitted without a row\n    #2: p2"]
    problems = fan_out_problems(replace(data, submitted={0: "p0"}))
    assert problems == ["1 parent(s) the run did not submit\n    p1"]


def test_a_waiting_parent_seen_with_a_wrong_count_of_children_left_fails():
    assert not Seen(1.0, "p0", 3, 3).wrong
    seen = [Seen(1.0, "p0", 0, 0), Seen(2.0, "p0", 2, 3), Seen(3.0, "p1", None, 1)]
    assert all(sample.wrong for sample in seen)
    problems = fan_out_problems(replace(fan_out_records(), seen=seen))
    assert problems[0].startswith("3 time(s) a waiting parent's count of children left was wrong")
    assert "at 1.000: p0 waiting, children_left 0, 0 awaited child(ren) unfinished" in problems[0]


def test_a_childs_step_run_twice_is_explained_by_the_kill_of_its_worker_or_fails():
    data = fan_out_records()
    again = child_run("c0-5", 11.0, "b", pid=2)
    executions = replace(data.executions, executions=[*data.executions.executions, again])
    effects = [e for e in executions.effects if e.task != "c0-5"]
    executions = replace(executions, effects=[*effects, Effect("c0-5", 0, "c0-5-b", 2, 11.5)])
    verdict = check_fan_out(replace(data, executions=executions))
    assert verdict.problems == [
        "children: 1 duplicate execution(s) unexplained\n"
        "    c0-5 step 0: pid 1 at 1.005, again by pid 2 at 11.000"
    ]
    killed = replace(executions, faults=[Fault("kill", 2, 2, pid=1)])
    verdict = check_fan_out(replace(data, executions=killed))
    assert verdict.passed, verdict.problems
    assert verdict.duplicates == {"worker killed": 1}


def test_a_childs_step_started_after_its_lease_was_lost_is_counted_and_its_effect_refused():
    data = fan_out_records()
    runs = [*data.executions.executions, child_run("c1-0", 11.0, "b", pid=2)]
    runs.append(child_run("c1-0", 12.0, "a"))  # a woke up after b took the child
    paused = [Fault("stop", 1.1, 11.5, pid=1)]
    effects = [e for e in data.executions.effects if e.task != "c1-0"]
    late = Effect("c1-0", 0, "c1-0-a", 1, 12.5)
    for written, passes in ([Effect("c1-0", 0, "c1-0-b", 2, 11.5)], True), ([late], False):
        executions = replace(
            data.executions, executions=runs, effects=effects + written, faults=paused
        )
        verdict = check_fan_out(replace(data, executions=executions))
        assert verdict.after_lease_loss == {"worker stopped past its lease": 1}
        assert verdict.passed is passes, verdict.problems
    assert "children: 1 effect(s) written after their lease was lost" in verdict.problems[0]


def test_the_childrens_log_holds_their_executions_and_the_parents_step_starts(tmp_path):
    log = tmp_path / "children.log"
    run = child_run("c0-0", 1.0)
    start = ParentStart(0.5, "p0", 0, 1, "s", 0.4, 0.3)
    log.write_text(
        json.dumps(run.__dict__) + "\n" + json.dumps({"event": "parent", **start.__dict__}) + "\n"
    )
    assert read_log(log) == ([run], [start])
