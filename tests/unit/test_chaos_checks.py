"""The fault-injection run's checks catch what they are meant to catch."""

from __future__ import annotations

import random
from collections import Counter

from benchmarks.faults.checks import Effect, Execution, Fault, Records, check
from benchmarks.faults.injection import junk, plan_faults, uncaught
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
