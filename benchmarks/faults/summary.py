"""The fault-injection run's summary: the figures of each workflow, and their lines."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from benchmarks.faults.checks import Fault, Verdict
from benchmarks.faults.diamond_checks import DiamondRecords, DiamondVerdict
from benchmarks.faults.diamond_records import DiamondLoad, Striker
from benchmarks.faults.enqueued_checks import EnqueuedRecords, EnqueuedVerdict
from benchmarks.faults.enqueued_records import EnqueueLoad
from benchmarks.faults.fan_out_checks import CHILDREN, FanOutRecords, FanOutVerdict, Seen
from benchmarks.faults.fan_out_records import FanOutLoad
from benchmarks.faults.injection import Fleet
from benchmarks.faults.scheduled_checks import ScheduledRecords, ScheduledVerdict, lateness
from benchmarks.faults.traced_checks import TracedRecords, TracedVerdict
from benchmarks.faults.waiting_checks import Stuck, WaitRecords, WaitVerdict
from benchmarks.faults.waiting_load import WaitingLoad
from benchmarks.faults.waiting_records import StuckWatch


def summary(
    args: argparse.Namespace,
    setup: dict[str, Any],
    faults: list[Fault],
    verdict: Verdict,
    statuses: Counter[str],
    fleet: Fleet,
    elapsed: float,
) -> dict[str, Any]:
    """The run's figures (``setup``: its workers, threads, lease and sweep)."""
    return {
        "command": "python benchmarks/chaos.py " + " ".join(sys.argv[1:]),
        "queue": args.queue,
        "db": args.db,
        "seed": args.seed,
        "tasks": args.tasks,
        **setup,
        "faults": dict(Counter(f.kind for f in faults)),
        "duplicates": dict(verdict.duplicates),
        "after_lease_loss": dict(verdict.after_lease_loss),
        "recovery_seconds": {k: round(v, 2) for k, v in verdict.recovery.items()},
        "workers_started": fleet.started,
        "elapsed_seconds": round(elapsed, 1),
        "statuses": dict(statuses),
        "problems": verdict.problems,
        "passed": verdict.passed,
    }


def timeline(verdict: Verdict, began: float) -> list[dict[str, Any]]:
    """Each fault, from the run's start, with its recovery."""
    return [
        {
            "kind": fault.kind,
            "at": round(fault.start - began, 2),
            "lasted": round(fault.end - fault.start, 2),
            "pid": fault.pid,
            "recovery": round(seconds, 2),
        }
        for fault, seconds in verdict.recoveries
    ]


def waits_summary(
    load: WaitingLoad,
    watch: StuckWatch[Stuck],
    records: WaitRecords,
    verdict: WaitVerdict,
    late_limit: float,
) -> dict[str, Any]:
    """The waiting workflow's figures."""
    outcomes = {("sent", False): "first", ("sent", True): "again, ignored",
                ("refused", True): "again, refused (task finished)"}  # fmt: skip
    sent = Counter(outcomes.get((s.outcome, s.again), s.outcome) for s in load.sent)
    return {
        "tasks": len(load.ids),
        "sends": dict(sent),
        "signals": dict(verdict.moments),
        "cues_and_pauses": dict(load.outcomes),
        "timers": verdict.timers(),
        "late_limit": late_limit,
        "timers_over_the_limit": dict(verdict.late),
        "samples": watch.samples,
        "load_behind_seconds": round(load.behind, 2),
        "stuck": len(watch.seen),
        "failed_attempts": dict(Counter(failure.error for failure in records.failures)),
    }


def print_summary(result: dict[str, Any]) -> None:
    faults = result["faults"]
    duplicates = result["duplicates"]
    late = result["after_lease_loss"]
    recovery = result["recovery_seconds"]
    print(
        f"chaos: {result['tasks']:,} tasks, queue {result['queue']}, db {result['db']}, "
        f"{result['workers']} workers x {result['threads']} threads, "
        f"lease {result['lease_seconds']:g}s, sweep {result['sweep_interval']:g}s, "
        f"seed {result['seed']}"
    )
    print(f"  faults injected: {sum(faults.values())} ({_counts(faults)})")
    print(f"  duplicate step executions: {sum(duplicates.values())} ({_counts(duplicates)})")
    print(
        f"  steps started after their lease was lost (writes refused): "
        f"{sum(late.values())} ({_counts(late)})"
    )
    longest = max(recovery.values(), default=0.0)
    print(f"  max time from fault to recovery: {longest:.1f}s ({_counts(recovery, 's')})")
    waits = result["waits"]
    timers = waits["timers"]
    print(
        f"  waiting workflow: {waits['tasks']} tasks; signals consumed: "
        f"{sum(waits['signals'].values())} ({_counts(waits['signals'])})"
    )
    print(f"  signal sends: {_counts(waits['sends'])}")
    print(
        f"  timers: {timers['count']}; fired after due: {_spread(timers['fired'])}; "
        f"step restarted after due: {_spread(timers['restarted'])}"
    )
    print(
        f"  timers over the {waits['late_limit']:g}s limit: "
        f"{_counts(waits['timers_over_the_limit'])}; "
        f"left waiting with their signal there: {waits['stuck']} in {waits['samples']} samples"
    )
    print(f"  cues and pauses: {_counts(waits['cues_and_pauses'])}")
    print(f"  failed step attempts: {_counts(waits['failed_attempts'])}")
    print(f"  the waiting load ran up to {waits['load_behind_seconds']:g}s behind its plan")
    print_fan_out(result["fan_out"])
    if "diamond" in result:
        print_diamond(result["diamond"])
    if "scheduled" in result:
        print_scheduled(result["scheduled"])
    if "traced" in result:
        print_traced(result["traced"])
    if "django_tasks" in result:
        print_enqueued(result["django_tasks"])
    print(f"  workers started: {result['workers_started']}; elapsed {result['elapsed_seconds']}s")
    for problem in result["problems"]:
        print(f"  FAIL: {problem}")
    print("PASS" if result["passed"] else "FAIL")


def _spread(seconds: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:g}s" for name, value in seconds.items()) or "none"


def _counts(counts: dict[str, Any], unit: str = "") -> str:
    return ", ".join(f"{kind} {value}{unit}" for kind, value in sorted(counts.items())) or "none"


def fan_out_summary(
    load: FanOutLoad, watch: StuckWatch[Seen], records: FanOutRecords, verdict: FanOutVerdict
) -> dict[str, Any]:
    """The fan-out workflow's figures."""
    return {
        "parents": len(load.submitted),
        "children_each": CHILDREN,
        "parents_by_status": dict(Counter(p.status for p in records.parents)),
        "children_by_status": dict(Counter(c.status for c in records.children)),
        "mapped": sum(p.uses_map for p in records.parents),
        "duplicates": dict(verdict.duplicates),
        "after_lease_loss": dict(verdict.after_lease_loss),
        "parent_step_runs": len(records.starts),
        "delays": verdict.delays(),
        "samples": watch.samples,
        "wrong_counts_seen": len(records.seen),
        "problems": len(verdict.problems),
    }


def print_fan_out(fan_out: dict[str, Any]) -> None:
    delays = fan_out["delays"]
    print(
        f"  fan-out workflow: {fan_out['parents']} parents x {fan_out['children_each']} "
        f"children ({fan_out['mapped']} through map); parents "
        f"{_counts(fan_out['parents_by_status'])}; children "
        f"{_counts(fan_out['children_by_status'])}"
    )
    duplicates, late = fan_out["duplicates"], fan_out["after_lease_loss"]
    print(
        f"  child step executions duplicated: {sum(duplicates.values())} "
        f"({_counts(duplicates)}); started after their lease was lost: "
        f"{sum(late.values())} ({_counts(late)})"
    )
    print(
        f"  parents after their last child: woken {_spread(delays['woken'])}; "
        f"resumed {_spread(delays['resumed'])}"
    )
    print(
        f"  waiting parents with a wrong count of children left: "
        f"{fan_out['wrong_counts_seen']} in {fan_out['samples']} samples"
    )


def diamond_summary(
    load: DiamondLoad, striker: Striker, records: DiamondRecords, verdict: DiamondVerdict
) -> dict[str, Any]:
    """The diamond workflow's figures."""
    return {
        "tasks": len(load.submitted),
        "by_status": dict(Counter(d.status for d in records.diamonds)),
        "step_runs": len(records.runs),
        "effects": len(records.executions.effects),
        "executions": len(records.executions.executions),
        "overlapping_branches": verdict.overlapping,
        "strikes": dict(Counter(f.kind for f in striker.strikes)),
        "strikes_missed": striker.missed,
        "faults_during_branches": dict(verdict.during_branches),
        "duplicates": dict(verdict.duplicates),
        "after_lease_loss": dict(verdict.after_lease_loss),
        "problems": len(verdict.problems),
    }


def print_diamond(diamond: dict[str, Any]) -> None:
    print(
        f"  diamond workflow: {diamond['tasks']} tasks ({_counts(diamond['by_status'])}); "
        f"{diamond['step_runs']} completed step runs, {diamond['effects']} effects, "
        f"{diamond['executions']} step executions"
    )
    print(
        f"  branch executions that overlapped another of their claim: "
        f"{diamond['overlapping_branches']}; faults aimed at parallel branches: "
        f"{_counts(diamond['strikes'])} ({diamond['strikes_missed']} moments without any); "
        f"faults that hit 2+ running branches of a task: "
        f"{_counts(diamond['faults_during_branches'])}"
    )
    duplicates, late = diamond["duplicates"], diamond["after_lease_loss"]
    print(
        f"  diamond step executions duplicated: {sum(duplicates.values())} "
        f"({_counts(duplicates)}); started after their lease was lost: "
        f"{sum(late.values())} ({_counts(late)})"
    )


def scheduled_summary(records: ScheduledRecords, verdict: ScheduledVerdict) -> dict[str, Any]:
    """The scheduled workflow's figures."""
    statuses = records.executions.statuses
    return {
        "schedules": dict(Counter(t.schedule for t in records.ticks)),
        "tasks": len(records.ticks),
        "by_status": dict(Counter(statuses.values())),
        "ticks_expected": verdict.expected,
        "missed": dict(verdict.missed),
        "gaps": verdict.gaps,
        "lateness_seconds": lateness(records),
        "duplicates": dict(verdict.duplicates),
        "after_lease_loss": dict(verdict.after_lease_loss),
        "problems": len(verdict.problems),
    }


def print_scheduled(scheduled: dict[str, Any]) -> None:
    missed = scheduled["missed"]
    print(
        f"  scheduled workflow: {scheduled['tasks']} tasks ({_counts(scheduled['by_status'])}) "
        f"of {scheduled['ticks_expected']} ticks due ({_counts(scheduled['schedules'])}); "
        f"missed {sum(missed.values())} in {scheduled['gaps']} gap(s) ({_counts(missed)})"
    )
    late = scheduled["lateness_seconds"]
    print(
        f"  after the tick: submitted {_spread(_drop_n(late['submitted']))}; "
        f"started {_spread(_drop_n(late['started']))}"
    )
    duplicates, lost = scheduled["duplicates"], scheduled["after_lease_loss"]
    print(
        f"  scheduled step executions duplicated: {sum(duplicates.values())} "
        f"({_counts(duplicates)}); started after their lease was lost: "
        f"{sum(lost.values())} ({_counts(lost)})"
    )


def _drop_n(spread: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in spread.items() if k != "n"}


def traced_summary(records: TracedRecords, verdict: TracedVerdict) -> dict[str, Any]:
    """The traced workflow's figures, and the workers table's."""
    return {
        "tasks": len(records.tasks),
        "by_status": dict(Counter(t.status for t in records.tasks)),
        "step_spans": verdict.spans,
        "step_span_outcomes": dict(verdict.outcomes),
        "completed_spans_missing": dict(verdict.missing),
        "worker_rows": len(records.rows),
        "killed": len(records.killed),
        "killed_rows_gone": verdict.killed_rows,
        "killed_before_registering": verdict.killed_unregistered,
        "stopped_cleanly": len(records.stopped_cleanly),
        "problems": len(verdict.problems),
    }


def print_traced(traced: dict[str, Any]) -> None:
    missing = traced["completed_spans_missing"]
    print(
        f"  traced workflow: {traced['tasks']} tasks ({_counts(traced['by_status'])}); "
        f"{traced['step_spans']} step spans in their submit's trace "
        f"({_counts(traced['step_span_outcomes'])}); completed spans missing: "
        f"{sum(missing.values())} ({_counts(missing)})"
    )
    print(
        f"  workers table at the end: {traced['worker_rows']} row(s); "
        f"{traced['killed_rows_gone']} of {traced['killed']} killed workers' rows gone "
        f"({traced['killed_before_registering']} killed before registering); "
        f"{traced['stopped_cleanly']} workers stopped cleanly"
    )


def enqueued_summary(
    load: EnqueueLoad, records: EnqueuedRecords, verdict: EnqueuedVerdict
) -> dict[str, Any]:
    """The Django tasks' figures."""
    return {
        "tasks": len(load.enqueued),
        "flaky": sum(e.flaky for e in load.enqueued),
        "with_priority": sum(e.priority != 0 for e in load.enqueued),
        "results_by_status": dict(verdict.by_status),
        "results_by_attempts": {str(k): v for k, v in sorted(verdict.attempts.items())},
        "step_runs": len(records.attempts),
        "executions": len(records.executions.executions),
        "enqueued_again": verdict.enqueued_again,
        "duplicates": dict(verdict.duplicates),
        "after_lease_loss": dict(verdict.after_lease_loss),
        "problems": len(verdict.problems),
    }


def print_enqueued(tasks: dict[str, Any]) -> None:
    print(
        f"  Django tasks: {tasks['tasks']} enqueued ({tasks['flaky']} failing their first "
        f"attempt, {tasks['with_priority']} with a priority); results "
        f"{_counts(tasks['results_by_status'])}, by attempts "
        f"{_counts(tasks['results_by_attempts'])}; {tasks['step_runs']} step runs, "
        f"{tasks['executions']} executions"
    )
    duplicates, late = tasks["duplicates"], tasks["after_lease_loss"]
    print(
        f"  Django task executions duplicated: {sum(duplicates.values())} "
        f"({_counts(duplicates)}); started after their lease was lost: "
        f"{sum(late.values())} ({_counts(late)}); enqueued again after an unknown "
        f"outcome: {tasks['enqueued_again']}"
    )
