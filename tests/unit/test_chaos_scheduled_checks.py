"""The checks of the fault-injection run's scheduled workflow
(``benchmarks/faults/scheduled_checks``) pass on good records and name what is wrong in bad
ones: a tick run twice, a tick missed without a cause."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from benchmarks.faults.checks import Effect, Execution, Fault, Records
from benchmarks.faults.scheduled_checks import (
    EVEN_SECONDS,
    NO_WORKER,
    SCHEDULES,
    STALLED,
    ScheduledRecords,
    Tick,
    check_scheduled,
    key_of,
    lateness,
)
from salvador_django import Schedule

EVERY = "every-second-1"
BEGIN = 1_800_000_000.0  # an even second
SECONDS = 6


def tick(schedule: str, due: float, created: float | None = None, key: str | None = None) -> Tick:
    task = f"{schedule}@{due:.0f}"
    created = due + 0.01 if created is None else created
    return Tick(task, schedule, due, key_of(schedule, due) if key is None else key, created)


def all_ticks(skip: set[tuple[str, float]] = frozenset()) -> list[Tick]:  # type: ignore[assignment]
    """Every tick of every schedule from BEGIN on, but those in ``skip``."""
    return [
        tick(name, BEGIN + n)
        for name, period in SCHEDULES.items()
        for n in range(0, SECONDS, int(period))
        if (name, BEGIN + n) not in skip
    ]


def run(execution_of: Tick, t: float | None = None, token: str = "a", pid: int = 1) -> Execution:
    claimed = {"a": 0.0, "b": 10.0}[token]
    when = execution_of.created + 0.1 if t is None else t
    return Execution(
        when, execution_of.task, 0, 1, pid, token, BEGIN + claimed, execution_of.created
    )


def records(
    ticks: list[Tick],
    *,
    executions: list[Execution] | None = None,
    faults: list[Fault] | None = None,
    ready: dict[int, float] | None = None,
) -> ScheduledRecords:
    if executions is None:
        executions = [run(t) for t in ticks]
    last = {e.task: e for e in executions}  # each task's effect by the last claim that ran it
    effects = [Effect(task, 0, e.token, e.pid, e.t + 0.01) for task, e in last.items()]
    runs = Records(
        statuses={t.task: "completed" for t in ticks},
        errors={},
        events={t.task: [t.created, t.created + 1] for t in ticks},
        executions=executions,
        effects=effects,
        failed_attempts=set(),
        faults=faults or [],
        steps=1,
    )
    return ScheduledRecords(ticks, runs, {1: BEGIN - 5} if ready is None else ready)


def test_a_clean_run_passes() -> None:
    verdict = check_scheduled(records(all_ticks()))
    assert verdict.passed, verdict.problems
    assert verdict.expected == 3 * SECONDS + SECONDS // 2
    assert (verdict.gaps, sum(verdict.missed.values())) == (0, 0)


def test_a_tick_with_two_tasks_fails() -> None:
    ticks = all_ticks()
    again = replace(tick(EVERY, BEGIN + 2), task="another")
    verdict = check_scheduled(records([*ticks, again]))
    assert verdict.problems[0].startswith("1 tick(s) with more than one task")
    assert key_of(EVERY, BEGIN + 2) in verdict.problems[0]


def test_a_tick_whose_step_ran_twice_without_a_cause_fails() -> None:
    ticks = all_ticks()
    twice = ticks[2]
    executions = [run(t) for t in ticks] + [run(twice, twice.created + 11, "b", pid=2)]
    verdict = check_scheduled(records(ticks, executions=executions))
    assert any(p.startswith("1 duplicate execution(s) unexplained") for p in verdict.problems)
    assert verdict.duplicates == {"unexplained": 1}


def test_a_tick_whose_step_ran_again_after_its_worker_was_killed_passes() -> None:
    ticks = all_ticks()
    twice = ticks[2]
    executions = [run(t) for t in ticks] + [run(twice, twice.created + 11, "b", pid=2)]
    kill = Fault("kill", twice.created + 0.5, twice.created + 0.5, pid=1)
    verdict = check_scheduled(records(ticks, executions=executions, faults=[kill],
                                      ready={1: BEGIN - 5, 2: BEGIN - 5}))  # fmt: skip
    assert verdict.passed, verdict.problems
    assert verdict.duplicates == {"worker killed": 1}


def test_a_tick_missed_by_a_round_that_ticked_the_others_fails() -> None:
    verdict = check_scheduled(records(all_ticks(skip={(EVERY, BEGIN + 3)})))
    assert verdict.problems == [
        f"1 tick(s) missed, unexplained\n    {key_of(EVERY, BEGIN + 3)}: no task (the tasks "
        f"around it: {key_of(EVERY, BEGIN + 2)}, {key_of(EVERY, BEGIN + 4)}); a round ticked "
        f"{key_of('every-second-2', BEGIN + 3)}"
    ]
    assert (verdict.gaps, verdict.missed) == (1, {"unexplained": 1})


def everyone(*seconds: int) -> set[tuple[str, float]]:
    """Every schedule's ticks at ``seconds`` after BEGIN: no round ran then."""
    return {(name, BEGIN + n) for name in SCHEDULES for n in seconds}


def test_a_tick_nobody_ticked_without_a_cause_fails() -> None:
    verdict = check_scheduled(records(all_ticks(everyone(3))))
    assert verdict.missed == {"unexplained": 3}
    assert verdict.problems[0].startswith("3 tick(s) missed, unexplained")
    assert "a round ticked" not in verdict.problems[0]


def test_a_worker_killed_about_when_a_tick_was_due_explains_its_miss() -> None:
    # Killed from a second after the tick (its round began before) to two seconds before
    # it (its replacement was starting).
    for moment in (1.1, 3.6, 4.9):
        kill = Fault("kill", BEGIN + moment, BEGIN + moment, pid=2)
        verdict = check_scheduled(records(all_ticks(everyone(3)), faults=[kill]))
        assert verdict.passed, verdict.problems
        assert verdict.missed == {"a worker killed": 3}
    for moment in (0.9, 5.1):
        kill = Fault("kill", BEGIN + moment, BEGIN + moment, pid=2)
        verdict = check_scheduled(records(all_ticks(everyone(3)), faults=[kill]))
        assert verdict.missed == {"unexplained": 3}


def test_ticks_missed_while_postgresql_restarted_are_explained() -> None:
    restart = Fault("postgres-restart", BEGIN + 1.5, BEGIN + 2.5)
    verdict = check_scheduled(records(all_ticks(everyone(2, 3)), faults=[restart]))
    assert verdict.passed, verdict.problems
    assert verdict.missed == {"PostgreSQL restarted": 3 * 2 + 1}
    assert verdict.gaps == 4


def test_a_paused_worker_explains_misses_until_two_seconds_after_it_resumed() -> None:
    stop = Fault("stop", BEGIN + 0.5, BEGIN + 1.8, pid=2)
    verdict = check_scheduled(records(all_ticks({(EVERY, BEGIN + 3)}), faults=[stop]))
    assert verdict.passed, verdict.problems
    assert verdict.missed == {"a worker stopped": 1}
    later = check_scheduled(records(all_ticks({(EVERY, BEGIN + 4)}), faults=[stop]))
    assert later.missed == {"unexplained": 1}


def test_misses_while_no_worker_was_up_are_explained_until_one_is() -> None:
    # The first worker to run a step did so 3.5 s in.
    ready = {2: BEGIN + 3.5}
    verdict = check_scheduled(records(all_ticks(everyone(1, 2, 3)), ready=ready))
    # Ticks 1 and 2 had no worker to tick them; tick 3 had one from 3.5 s on, and so
    # had the even seconds' tick 2 before its next.
    assert verdict.missed == {NO_WORKER: 3 + 3, "unexplained": 3 + 1}
    assert len(verdict.problems) == 1
    assert key_of(EVERY, BEGIN + 3) in verdict.problems[0]
    assert key_of("even-seconds", BEGIN + 2) in verdict.problems[0]


def test_a_task_submitted_before_its_tick_fails() -> None:
    ticks = all_ticks()
    ticks[1] = replace(ticks[1], created=ticks[1].due - 0.2)
    verdict = check_scheduled(records(ticks))
    assert verdict.problems == [
        f"1 task(s) submitted before their tick was due\n    {ticks[1].task}: created 0.200s "
        "before its tick"
    ]


def test_tasks_under_another_key_off_the_grid_or_of_no_schedule_fail() -> None:
    ticks = all_ticks()
    ticks[0] = replace(ticks[0], key="schedule:every-second-1:now")
    ticks.append(tick("even-seconds", BEGIN + 1))
    ticks.append(tick("someone-else", BEGIN + 1))
    problems = check_scheduled(records(ticks)).problems
    assert [p.split("\n")[0] for p in problems] == [
        "1 task(s) of no schedule of the run",
        "1 task(s) not under their tick's key",
        "1 tick(s) off their schedule's grid",
    ]


def test_a_schedule_that_never_ticked_fails() -> None:
    ticks = [t for t in all_ticks() if t.schedule != "even-seconds"]
    assert check_scheduled(records(ticks)).problems == ["schedule 'even-seconds' submitted no task"]


def test_lateness_spans_submission_and_start() -> None:
    ticks = [tick(EVERY, BEGIN + n, created=BEGIN + n + 0.01 * (n + 1)) for n in range(4)]
    executions = [run(t, t.due + 1.0) for t in ticks]
    late = lateness(records(ticks, executions=executions))
    assert late["submitted"] == {"n": 4, "p50": 0.025, "p99": 0.04, "max": 0.04}
    assert late["started"] == {"n": 4, "p50": 1.0, "p99": 1.0, "max": 1.0}


def test_the_periods_are_those_of_the_schedules() -> None:
    moment = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    cron = Schedule(EVEN_SECONDS, name="x")
    assert cron.next_tick(moment) - cron.previous_tick(moment) == timedelta(seconds=2)
    assert SCHEDULES == {
        "every-second-1": 1.0, "every-second-2": 1.0, "every-second-3": 1.0, "even-seconds": 2.0,
    }  # fmt: skip
    assert key_of(EVERY, 0) == "schedule:every-second-1:1970-01-01T00:00:00Z"


def test_on_sqlite_a_late_heartbeat_logged_then_explains_a_tick_nobody_ticked() -> None:
    data = records(all_ticks(everyone(3)))
    data.executions.stalls = [Fault("stall", BEGIN + 1.5, BEGIN + 3.5, pid=7)]
    assert check_scheduled(data).missed == {"unexplained": 3}  # PostgreSQL: no excuse
    data.executions.stop_stalls_all = True
    verdict = check_scheduled(data)
    assert verdict.passed, verdict.problems
    assert verdict.missed == {STALLED: 3}
    data.executions.stalls = [Fault("stall", BEGIN + 4.5, BEGIN + 6, pid=7)]  # after: none
    assert check_scheduled(data).missed == {"unexplained": 3}
