"""The schedules section's table and targets in the report of ``benchmarks/run.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.servers import Result

Row = tuple[str, Callable[[Result], str]]


def _fmt(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def scan(plan: str) -> str:
    """How a plan reads the schedules: through the index, or every row."""
    if "salvador_schedule_due" in plan:
        return "index salvador_schedule_due"
    return "sequential scan" if "Seq Scan" in plan or "SCAN " in plan else plan[:40]


def _at(column: Result, size: int) -> Result:
    found: Result = column.get("sizes", {}).get(str(size), {})
    return found


def _size_rows(size: int, dues: list[int]) -> list[Row]:
    """The rows of ``size`` schedules in the table, and of ``dues`` of them due."""

    def idle(col: Result) -> str:
        i = _at(col, size).get("idle")
        return "-" if not i else f"{i['statements']} ({i['lookups']} lookup)"

    def indexed(col: Result) -> str:
        i = _at(col, size).get("idle", {})
        return "-" if "indexed" not in i else scan(i.get("plan") or "")

    def get(key: str, sub: str, digits: int = 2) -> Callable[[Result], str]:
        return lambda col: _fmt(_at(col, size).get(key, {}).get(sub), digits)

    def seconds(col: Result) -> str:
        s = _at(col, size)
        if "declare_seconds" not in s:
            return "-"
        return f"{s['declare_seconds']:.2f} / {s['sync_seconds']:.2f}"

    def due(n: int, key: str, digits: int = 1) -> Callable[[Result], str]:
        return lambda col: _fmt(_at(col, size).get("due", {}).get(str(n), {}).get(key), digits)

    out: list[Row] = [
        (f"{size:,} schedules, none due: statements of a round", idle),
        ("  the lookup's plan", indexed),
        ("  a round's time, median ms", get("idle", "round_ms")),
        ("  the timer thread's round (tick_due): statements", get(
            "timer_round", "statements", 0)),
        ("  the same, median ms", get("timer_round", "ms")),
        ("  declared in code / synced unchanged, s", seconds),
    ]  # fmt: skip
    for n in dues:
        out += [
            (f"  {n:,} due: lookups in their round(s)", due(n, "lookups", 0)),
            ("    statements per tick", due(n, "statements_per_tick")),
            ("    ticks/s (each one task submitted)", due(n, "ticks_per_second", 0)),
        ]
    return out


def rows(columns: dict[str, Result]) -> list[Row]:
    """The schedules table's rows; each column is a backend's ``schedules`` figures."""
    sizes = sorted({int(n) for col in columns.values() for n in col.get("sizes", {})})
    out: list[Row] = []
    for size in sizes:
        dues = {int(n) for col in columns.values() for n in _at(col, size).get("due", {})}
        out += _size_rows(size, sorted(dues))

    def base(key: str, digits: int = 0, unit: str = "") -> Callable[[Result], str]:
        def get(c: Result) -> str:
            sizes: dict[str, Result] = c.get("sizes", {})
            top = sizes[max(sizes, key=int)] if sizes else {}
            value = top.get("baseline", {}).get(key)
            return "-" if value is None else f"{value:,.{digits}f}{unit}"

        return get

    def spread(key: str) -> Callable[[Result], str]:
        def get(c: Result) -> str:
            values = c.get("lateness", {}).get(key)
            if not values:
                return "-"
            return f"{values['p50']:.1f} / {values['p99']:.1f} / {values['max']:.1f}"

        return get

    def lateness(key: str, digits: int = 0) -> Callable[[Result], str]:
        return lambda c: _fmt(c.get("lateness", {}).get(key), digits)

    out += [
        ("raw baseline: bare INSERTs/s of as many tasks", base("raw_inserts_per_second")),
        ("  submit()/s of as many tasks, each its own transaction", base("submits_per_second")),
        ("  ticks/s / bare INSERTs/s", base("ticks_over_raw", 2, "x")),
        ("  ticks/s / submit()/s", base("ticks_over_submit", 2, "x")),
        ("every second, one worker: submitted after due, p50 / p99 / max ms", spread(
            "submitted_ms")),
        ("  started after due, p50 / p99 / max ms", spread("started_ms")),
        ("  ticks measured / missed / ticked twice", lambda c: "-" if not c.get("lateness") else (
            f"{c['lateness']['ticks']} / {c['lateness']['missed']} / "
            f"{c['lateness']['ticked_twice']}")),
        ("  first tick after the worker's spawn, s", lateness(
            "first_tick_after_spawn_seconds", 1)),
    ]  # fmt: skip
    return out


def targets(measured: dict[str, Result]) -> list[tuple[str, bool | None, str]]:
    """The targets of the schedules section (issue 17), printed, never asserted."""
    out: list[tuple[str, bool | None, str]] = []
    for backend, r in measured.items():
        sizes = r.get("schedules", {}).get("sizes", {})
        if not sizes:
            continue
        idle = {int(n): s["idle"] for n, s in sizes.items() if "idle" in s}
        one = all(i["lookups"] == 1 and i["statements"] == 1 for i in idle.values())
        largest = idle[max(idle)] if idle else {}
        out.append(
            (
                f"one query per tick round, however many schedules, through the index at "
                f"{max(idle, default=0):,} ({backend})",
                one and bool(largest.get("indexed")),
                "; ".join(
                    f"{n:,}: {i['statements']} statement(s), {scan(i.get('plan') or '')}, "
                    f"{i['round_ms']:.2f} ms"
                    for n, i in sorted(idle.items())
                ),
            )
        )
    for backend in ("postgres", "postgres+redis", "sqlite"):
        late = measured.get(backend, {}).get("schedules", {}).get("lateness")
        poll = (late or {}).get("poll_interval", 0.0)
        limit = 1000.0 if backend != "sqlite" else 1000.0 * (1 + poll)
        started = late["started_ms"] if late else None
        out.append(
            (
                f"a tick starts its task within {limit / 1000:g} s of its due time, p99 "
                f"({backend})",
                None if started is None else started["p99"] <= limit,
                "-"
                if started is None
                else f"p99 {started['p99']:.1f} ms, max {started['max']:.1f} ms",
            )
        )
    return out
