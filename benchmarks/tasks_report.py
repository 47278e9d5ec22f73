"""The django-tasks section's table and targets in the report of ``benchmarks/run.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.servers import Result

Row = tuple[str, Callable[[Result], str]]
TIMES_PEER = 5.0  # issue 19: at least 5x db_worker's tasks/s
START_P50_MS = 10.0  # issue 19: enqueue -> start p50 at most 10 ms


def _fmt(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _get(column: Result, side: str, section: str, key: str) -> Any:
    return column.get(side, {}).get(section, {}).get(key)


def rows(columns: dict[str, Result]) -> list[Row]:
    """The table's rows; each column is a backend's ``django_tasks`` figures."""

    def tp(side: str, key: str = "tasks_per_second", digits: int = 0) -> Callable[[Result], str]:
        return lambda c: _fmt(_get(c, side, "throughput", key), digits)

    def runs(side: str) -> Callable[[Result], str]:
        def get(c: Result) -> str:
            values = _get(c, side, "throughput", "tasks_per_second_runs") or []
            return ", ".join(f"{v:.0f}" for v in values) or "-"

        return get

    def lat(side: str, key: str) -> Callable[[Result], str]:
        def get(c: Result) -> str:
            s = _get(c, side, "latency", key)
            return f"{s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f}" if s else "-"

        return get

    return [
        ("ours: tasks/s (runworkflows --burst, threads)", tp("ours")),
        ("  each run (the median run shown)", runs("ours")),
        ("db_worker --batch: tasks/s", tp("theirs")),
        ("  each run (the median run shown)", runs("theirs")),
        ("ours / db_worker", lambda c: _fmt(c.get("ratio"), 2) + ("x" if "ratio" in c else "")),
        ("worker CPU per task, ours / db_worker, ms", lambda c: (
            f"{tp('ours', 'worker_cpu_ms_per_task', 2)(c)} / "
            f"{tp('theirs', 'worker_cpu_ms_per_task', 2)(c)}")),
        ("ours: enqueue -> start, p50/p95/p99 ms", lat("ours", "start_ms")),
        ("  enqueue -> done seen, p50/p95/p99 ms", lat("ours", "seen_ms")),
        ("db_worker: enqueue -> start, p50/p95/p99 ms", lat("theirs", "start_ms")),
        ("  enqueue -> done seen, p50/p95/p99 ms", lat("theirs", "seen_ms")),
        ("db_worker --interval, s", lambda c: _fmt(c.get("interval"), 2)),
        ("skipped", lambda c: c.get("skipped", "-")),
    ]  # fmt: skip


def targets(measured: dict[str, Result]) -> list[tuple[str, bool | None, str]]:
    """The targets of issue 19 on each backend measured, printed, never asserted."""
    out: list[tuple[str, bool | None, str]] = []
    for backend, r in measured.items():
        section = r.get("django_tasks")
        if section is None:
            continue
        ratio = section.get("ratio")
        ours = _get(section, "ours", "throughput", "tasks_per_second")
        theirs = _get(section, "theirs", "throughput", "tasks_per_second")
        out.append(
            (
                f"Django tasks: >= {TIMES_PEER:g}x db_worker's tasks/s ({backend})",
                None if ratio is None else ratio >= TIMES_PEER,
                "-" if ratio is None else f"{ours:,.0f} / {theirs:,.0f} = {ratio:.2f}x",
            )
        )
        start = _get(section, "ours", "latency", "start_ms")
        # SQLite has no LISTEN: its workers poll, as the latency section's target allows.
        limit = START_P50_MS if backend != "sqlite" else 1000 * section.get("interval", 0.0)
        out.append(
            (
                f"Django tasks: enqueue -> start p50 <= {limit:g} ms ({backend})",
                None if start is None else start["p50"] <= limit,
                "-" if start is None else f"{start['p50']:.1f} ms (p95 {start['p95']:.1f} ms)",
            )
        )
    return out
