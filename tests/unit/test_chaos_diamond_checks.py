"""The checks of the fault-injection run's diamond workflow (``benchmarks/faults/diamond_checks``)
pass on good records and name what is wrong in bad ones."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from benchmarks.faults.checks import Effect, Execution, Fault, Records
from benchmarks.faults.diamond_checks import (
    ATOMIC,
    BRANCHES,
    STEPS,
    Diamond,
    DiamondRecords,
    Done,
    Run,
    ancestors,
    check_diamonds,
    expected_result,
    index,
    running_at,
)

TASK = "d0"
CLAIMED = {"a": 0.0, "b": 10.0}
PID = {"a": 1, "b": 2}


def start(name: str, t: float, token: str = "a") -> Execution:
    return Execution(t, TASK, index(name), 1, PID[token], token, CLAIMED[token])


def done(name: str, t: float, token: str = "a") -> Done:
    return Done(t, TASK, index(name), 1, token)


#: One claim ran it all: start, the four branches side by side, then the join.
TIMES = {
    "start": (1.0, 1.05, 1.1),
    "b1": (1.2, 1.4, 1.45),
    "b2": (1.201, 1.41, 1.46),
    "b3": (1.202, 1.42, 1.47),
    "b4": (1.203, 1.43, 1.48),
    "join": (1.6, 1.65, 1.7),
}


def diamond_records(
    *,
    executions: list[Execution] | None = None,
    ends: list[Done] | None = None,
    runs: list[Run] | None = None,
    effects: list[Effect] | None = None,
    faults: list[Fault] | None = None,
    result: Any = None,
    **changes: Any,
) -> DiamondRecords:
    if executions is None:
        executions = [start(name, began) for name, (began, _, _) in TIMES.items()]
    if ends is None:
        ends = [done(name, ended) for name, (_, ended, _) in TIMES.items()]
    if runs is None:
        runs = [Run(TASK, name, began, end) for name, (began, _, end) in TIMES.items()]
    if effects is None:
        effects = [Effect(TASK, index(name), "a", 1, TIMES[name][1]) for name in ATOMIC]
    records = Records(
        statuses={TASK: "completed"},
        errors={},
        events={TASK: [0.0, 2.0]},
        executions=executions,
        effects=effects,
        failed_attempts=set(),
        faults=faults or [],
        steps=len(STEPS),
    )
    diamond = Diamond(TASK, 0, "completed", expected_result(0) if result is None else result)
    fields: dict[str, Any] = {
        "submitted": {0: TASK},
        "diamonds": [diamond],
        "runs": runs,
        "executions": records,
        "done": ends,
    }
    return DiamondRecords(**{**fields, **changes})


def problems(data: DiamondRecords) -> list[str]:
    return check_diamonds(data).problems


def killed_during_branches() -> DiamondRecords:
    """Claim a's worker is killed while its four branches run (b3 had not returned); claim
    b runs b3 again, then the join."""
    executions = [start(name, began) for name, (began, _, _) in TIMES.items() if name != "join"]
    executions += [start("b3", 10.1, "b"), start("join", 10.4, "b")]
    ends = [done(n, TIMES[n][1]) for n in ("start", "b1", "b2", "b4")]
    ends += [done("b3", 10.2, "b"), done("join", 10.45, "b")]
    runs = [Run(TASK, n, TIMES[n][0], TIMES[n][2]) for n in ("start", "b1", "b2", "b4")]
    runs += [Run(TASK, "b3", 10.1, 10.3), Run(TASK, "join", 10.4, 10.5)]
    effects = [Effect(TASK, index(n), "a", 1, TIMES[n][1]) for n in ("start", "b1", "b2")]
    effects.append(Effect(TASK, index("join"), "b", 2, 10.45))
    kill = Fault("kill", 1.3, 1.31, 1)
    return diamond_records(
        executions=executions, ends=ends, runs=runs, effects=effects, faults=[kill]
    )


def test_the_diamond_is_start_four_branches_and_a_join():
    assert STEPS == ("start", "b1", "b2", "b3", "b4", "join")
    assert ancestors("join") == {"start", *BRANCHES}
    assert ancestors("b2") == {"start"}
    assert expected_result(7) == {name: [7, name] for name in BRANCHES}


def test_a_clean_run_passes_and_its_branches_overlapped():
    verdict = check_diamonds(diamond_records())
    assert verdict.passed, verdict.problems
    assert verdict.overlapping == 4
    assert sum(verdict.duplicates.values()) == 0


def test_a_branch_replayed_after_its_worker_was_killed_amid_the_branches_passes():
    verdict = check_diamonds(killed_during_branches())
    assert verdict.passed, verdict.problems
    assert dict(verdict.duplicates) == {"worker killed": 1}
    assert dict(verdict.during_branches) == {"kill": 1}


def test_what_a_worker_ran_at_a_moment_counts_its_unfinished_branches():
    data = killed_during_branches()
    assert running_at(data, 1.3, 1) == {TASK: 4}  # b3 never returned; the others after 1.3
    assert running_at(data, 1.415, 1) == {TASK: 2}  # b1 and b2 had returned
    assert running_at(data, 1.3, 2) == {}


def test_a_replay_without_a_cause_fails():
    data = killed_during_branches()
    data.executions.faults.clear()
    assert problems(data) == [
        "1 duplicate execution(s) unexplained\n    d0 step 3: pid 1 at 1.202, again by pid 2 "
        "at 10.100"
    ]


def test_a_completed_branch_running_again_fails():
    data = killed_during_branches()
    data.executions.executions.append(start("b1", 10.05, "b"))
    assert "1 completed step(s) ran again\n    d0 'b1' ran again by claim b after it completed" in (
        problems(data)
    )


def test_a_step_started_before_a_step_it_waits_for_ended_fails():
    executions = [start(n, TIMES[n][0]) for n in STEPS if n != "join"] + [start("join", 1.465)]
    found = problems(diamond_records(executions=executions))
    assert found == [
        "2 step(s) started before a step they wait for ended\n"
        "    d0 'join' started at 1.465, 'b3' ended 1.470\n"
        "    d0 'join' started at 1.465, 'b4' ended 1.480"
    ]


def test_a_join_without_every_branch_output_fails():
    seen = {**expected_result(0), "b4": None}
    assert problems(diamond_records(result=seen)) == [
        f"1 join(s) without every branch's output\n    d0 (#0): {seen!r}"
    ]


def test_a_step_with_no_or_two_completed_runs_fails():
    runs = [Run(TASK, n, b, e) for n, (b, _, e) in TIMES.items() if n != "b2"]
    runs.append(Run(TASK, "b4", 1.3, 1.5))
    assert problems(diamond_records(runs=runs)) == [
        "2 step(s) without exactly one completed run\n    d0 step 'b2': 0 completed run(s)\n"
        "    d0 step 'b4': 2 completed run(s)",
        "1 step(s) started before a step they wait for ended\n"
        "    d0 'join' started at 1.600, 'b2' never completed",
    ]


def test_an_atomic_step_without_one_effect_or_an_effect_of_another_fails():
    effects = [Effect(TASK, index(n), "a", 1, 1.0) for n in ATOMIC if n != "b1"]
    effects += [Effect(TASK, index("join"), "a", 1, 1.7), Effect(TASK, index("b3"), "a", 1, 1.5)]
    assert problems(diamond_records(effects=effects)) == [
        "2 atomic step(s) without exactly one effect\n    d0 step 'b1': 0 effect(s)\n"
        "    d0 step 'join': 2 effect(s)",
        "1 effect(s) of a step that writes none\n    d0 step 3",
    ]


def test_an_effect_of_a_claim_after_a_later_claim_ran_its_step_fails():
    data = killed_during_branches()
    # Claim b ran start again: claim a's effects of start, b1 and b2 came too late.
    data.executions.executions.append(start("start", 10.05, "b"))
    late = [p for p in problems(data) if "after their lease was lost" in p]
    assert late == [
        "3 effect(s) written after their lease was lost\n"
        "    d0 step 0: written by a too late\n    d0 step 1: written by a too late\n"
        "    d0 step 2: written by a too late"
    ]


def test_a_task_not_completed_or_submitted_without_a_row_fails():
    data = diamond_records()
    failed = replace(data.diamonds[0], status="failed", error="Step 'b3' failed: boom")
    data.executions.statuses[TASK] = "failed"
    data.executions.errors[TASK] = failed.error
    found = problems(replace(data, diamonds=[failed], submitted={0: TASK, 1: "d1"}))
    assert found == [
        "1 task(s) not completed: {'failed': 1}\n    d0 failed: Step 'b3' failed: boom",
        "1 diamond(s) submitted without a row\n    #1: d1",
    ]
