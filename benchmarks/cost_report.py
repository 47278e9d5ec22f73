"""The targets of the per-step cost (issue 20), read from one run's results.

Every ratio compares figures of the same run: ours on PostgreSQL against each peer,
a step's CPU against a budget, SQLite's steps against its own raw commit rate.
"""

from __future__ import annotations

from typing import Any

Result = dict[str, Any]
Target = tuple[str, bool | None, str]

#: The issue's budgets.
TIMES_PEERS = 3.0
WORKER_CPU_MS = 0.30
SERVER_CPU_MS = 0.40
START_P50_MS = {"postgres+redis": 3.0, "postgres": 4.0}
START_P99_MS = 10.0
SQLITE_SHARE_OF_RAW = 0.25


def targets(
    measured: dict[str, Result], peers: dict[str, Result], concurrency: int
) -> list[Target]:
    """Each target of issue 20: (target, met, the figure); met is None if unmeasured."""
    return [
        *_against_peers(measured.get("postgres", {}), peers),
        *_cpu(measured.get("postgres", {})),
        *_start(measured),
        _sqlite(measured.get("sqlite", {}), concurrency),
    ]


def _ours_on_postgres(pg: Result) -> float | None:
    found = [
        pg.get(key, {}).get("tasks_per_second") for key in ("throughput", "throughput_processes")
    ]
    values = [value for value in found if value]
    return max(values) if values else None


def _against_peers(pg: Result, peers: dict[str, Result]) -> list[Target]:
    ours = _ours_on_postgres(pg)
    rates = {
        name: p["throughput"]["tasks_per_second"]
        for name, p in peers.items()
        if not p.get("errors") and p.get("throughput", {}).get("tasks_per_second")
    }
    celery = {name: rate for name, rate in rates.items() if name.startswith("celery")}
    out: list[Target] = []
    groups = [("the best Celery pool", celery)]
    groups += [(name, {name: rates[name]}) for name in ("procrastinate", "dbos") if name in rates]
    for label, group in groups:
        what = f"workflows/s on PostgreSQL >= {TIMES_PEERS:g} x {label}"
        if ours is None or not group:
            out.append((what, None, "-"))
            continue
        name, theirs = max(group.items(), key=lambda item: item[1])
        out.append(
            (
                what,
                ours >= TIMES_PEERS * theirs,
                f"{ours:,.0f} vs {name} {theirs:,.0f}: {ours / theirs:.2f}x",
            )
        )
    return out


def _cpu(pg: Result) -> list[Target]:
    throughput = pg.get("throughput", {})
    out: list[Target] = []
    for key, budget, who in (
        ("worker_cpu_ms_per_step", WORKER_CPU_MS, "worker"),
        ("postgres_cpu_ms_per_step", SERVER_CPU_MS, "PostgreSQL server"),
    ):
        value = throughput.get(key)
        out.append(
            (
                f"{who} CPU <= {budget:.2f} ms per step (PostgreSQL, threads)",
                None if value is None else value <= budget,
                "-" if value is None else f"{value:.2f} ms",
            )
        )
    return out


def _start(measured: dict[str, Result]) -> list[Target]:
    out: list[Target] = []
    for backend, bound in START_P50_MS.items():
        start = measured.get(backend, {}).get("latency", {}).get("start_ms", {})
        p50, p99 = start.get("p50"), start.get("p99")
        out.append(
            (
                f"p50 submit -> start <= {bound:g} ms, p99 <= {START_P99_MS:g} ms ({backend})",
                None if p50 is None or p99 is None else p50 <= bound and p99 <= START_P99_MS,
                "-" if p50 is None or p99 is None else f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            )
        )
    return out


def _sqlite(sqlite: Result, concurrency: int) -> Target:
    steps = sqlite.get("throughput", {}).get("steps_per_second")
    raw = sqlite.get("raw_commits_per_second", {}).get(str(concurrency))
    what = f"SQLite steps/s >= {SQLITE_SHARE_OF_RAW:g} x raw commits/s ({concurrency} connections)"
    if not (steps and raw):
        return (what, None, "-")
    return (
        what,
        steps / raw >= SQLITE_SHARE_OF_RAW,
        f"{steps:,.0f} / {raw:,.0f} = {steps / raw:.3f}",
    )
