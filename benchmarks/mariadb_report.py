"""The MariaDB targets, read from one run's results.

Every ratio compares figures of the same run: our steps/s against MariaDB's own raw
commit rate at the run's concurrency, the claim over a table of history against the
claim over an empty one. Commits are InnoDB's committed transactions, counted for the
whole server (``benchmarks.mariadb_commits``): a run beside other clients says so.
"""

from __future__ import annotations

from typing import Any

from benchmarks.servers import MYSQL_BACKENDS

Result = dict[str, Any]
Target = tuple[str, bool | None, str]

#: The issue's targets.
SHARE_OF_RAW = 0.3
COMMITS_PER_STEP = 1.0  # on the happy path, besides one claim per task
CLAIM_GROWTH = 1.2
START_P50_MS = 5.0  # mariadb+redis


def targets(measured: dict[str, Result], concurrency: int) -> list[Target]:
    """Each MariaDB target: (target, met, the figure); none when no MariaDB backend ran."""
    backends = [name for name in MYSQL_BACKENDS if name in measured]
    if not backends:
        return []
    out: list[Target] = []
    for backend in backends:
        out.append(_share_of_raw(backend, measured[backend], concurrency))
        out.append(_commits(backend, measured[backend]))
    claim = _claim(measured.get("mariadb", {}))
    if claim is not None:
        out.append(claim)
    out.append(_start_with_redis(measured.get("mariadb+redis", {})))
    if "mariadb" in measured:
        out.append(_start_polling(measured["mariadb"]))
    return out


def _share_of_raw(backend: str, r: Result, concurrency: int) -> Target:
    steps = r.get("throughput", {}).get("steps_per_second")
    raw = r.get("raw_commits_per_second", {}).get(str(concurrency))
    what = f"steps/s >= {SHARE_OF_RAW:g} x raw commits/s ({concurrency} connections, {backend})"
    if not (steps and raw):
        return (what, None, "-")
    return (what, steps / raw >= SHARE_OF_RAW, f"{steps:,.0f} / {raw:,.0f} = {steps / raw:.3f}")


def _commits(backend: str, r: Result) -> Target:
    throughput = r.get("throughput", {})
    happy = throughput.get("happy_path_commits_per_step")
    what = (
        f"<= {COMMITS_PER_STEP:g} commit per step on the happy path, plus one claim per task "
        f"({backend})"
    )
    if happy is None:
        return (what, None, r.get("commits_not_measured", "-"))
    figure = (
        f"{happy:.3f} commits/step besides claims and an empty run's "
        f"({throughput['commits_per_step']:.3f} in all)"
    )
    if r.get("mysql_other_sessions"):
        figure += f"; {r['mysql_other_sessions']} other client session(s) may have added to it"
    return (what, happy <= COMMITS_PER_STEP + 1e-3, figure)


def _claim(r: Result) -> Target | None:
    """The claim over the most history against an empty table; None if scale did not run."""
    scale = r.get("scale", {})
    levels = sorted(int(h) for h in scale)
    if len(levels) < 2 or levels[0] != 0:
        return None
    empty, top = scale["0"]["claim_ms"]["p50"], scale[str(levels[-1])]["claim_ms"]["p50"]
    return (
        f"claim p50 at {levels[-1]:,} finished rows <= {CLAIM_GROWTH:g} x empty (mariadb)",
        top <= CLAIM_GROWTH * empty,
        f"{top:.2f} ms vs {empty:.2f} ms: {top / empty:.2f}x",
    )


def _start_with_redis(r: Result) -> Target:
    p50 = r.get("latency", {}).get("start_ms", {}).get("p50")
    return (
        f"p50 submit -> start <= {START_P50_MS:g} ms (mariadb+redis)",
        None if p50 is None else p50 <= START_P50_MS,
        "-" if p50 is None else f"{p50:.1f} ms",
    )


def _start_polling(r: Result) -> Target:
    """The database queue's workers poll on MariaDB: a start within one poll interval."""
    latency = r.get("latency", {})
    p50, poll = latency.get("start_ms", {}).get("p50"), latency.get("poll_interval")
    what = "p50 submit -> start <= the poll interval (mariadb, database queue)"
    if p50 is None or not poll:
        return (what, None, "-")
    return (what, p50 <= 1000 * poll, f"{p50:.1f} ms (poll interval {1000 * poll:.0f} ms)")
