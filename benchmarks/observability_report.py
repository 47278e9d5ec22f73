"""The observability section's table and targets in the report of ``benchmarks/run.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.observability import TARGET_DROP
from benchmarks.servers import Result

Row = tuple[str, Callable[[Result], str]]

#: "Costs nothing measurable": the hooks, everything off, under 1% of a step's CPU time,
#: well inside the bursts' run-to-run spread.
TARGET_HOOKS_SHARE = 0.01


def _fmt(value: Any, digits: int = 0, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def spread(column: Result, mode: str) -> float | None:
    """The spread of the ``mode`` runs' steps/s: (max - min) / median."""
    runs = column.get(mode, {}).get("steps_per_second_runs") or []
    median = column.get(mode, {}).get("steps_per_second")
    return (max(runs) - min(runs)) / median if len(runs) > 1 and median else None


def rows(concurrency: int) -> list[Row]:
    """The observability table's rows; each column is a backend's ``observability`` figures."""

    def get(mode: str, key: str, digits: int = 0) -> Callable[[Result], str]:
        return lambda c: _fmt(c.get(mode, {}).get(key), digits)

    def each(mode: str) -> Callable[[Result], str]:
        def cell(c: Result) -> str:
            runs = c.get(mode, {}).get("steps_per_second_runs")
            return ", ".join(f"{v:.0f}" for v in runs) if runs else "-"

        return cell

    def drop(key: str = "drop") -> Callable[[Result], str]:
        return lambda c: "-" if c.get(key) is None else f"{100 * c[key]:.1f}%"

    def part_of(mode: str) -> Callable[[Result], str]:
        def cell(c: Result) -> str:
            m = c.get(mode, {})
            if m.get("drop") is None:
                return "-"
            return f"{100 * m['drop']:.1f}%; {m['worker_cpu_ms_per_step_median']:.3f}"

        return cell

    def steady(key: str) -> Callable[[Result], str]:
        return lambda c: " / ".join(_fmt(c.get(mode, {}).get(key)) for mode in ("off", "on"))

    def runs_spread(mode: str) -> Callable[[Result], str]:
        return lambda c: _fmt(None if (s := spread(c, mode)) is None else 100 * s, 1, "%")

    def recorded(c: Result) -> str:
        r = c.get("on", {}).get("recorded")
        return "-" if not r else f"{r.get('spans')} / {_fmt(r.get('attempts_counted'))}"

    def hook(key: str, digits: int = 0) -> Callable[[Result], str]:
        return lambda c: _fmt(c.get("hooks", {}).get(key), digits)

    def part(name: str) -> Callable[[Result], str]:
        return lambda c: _fmt(c.get("hooks", {}).get("parts_ns", {}).get(name))

    def share(key: str = "hooks", digits: int = 3) -> Callable[[Result], str]:
        def cell(c: Result) -> str:
            value = c.get(key, {}).get("share_of_cpu_per_step")
            return "-" if value is None else f"{100 * value:.{digits}f}%"

        return cell

    def on(name: str | None = None) -> Callable[[Result], str]:
        def cell(c: Result) -> str:
            h = c.get("hooks_on", {})
            value = h.get("per_step_ns") if name is None else h.get("parts_ns", {}).get(name)
            return _fmt(None if value is None else value / 1000, 1)

        return cell

    label = {"off": "off (no receivers, no SDK, metrics off)", "on": "all on (OTel SDK + metrics)"}
    out: list[Row] = []
    for mode in ("off", "on"):
        out += [
            (f"steps/s, {label[mode]}, -c {concurrency}, median", get(mode, "steps_per_second")),
            ("  each run", each(mode)),
            ("  spread of the runs, (max - min) / median", runs_spread(mode)),
            ("  worker CPU ms/step, median", get(mode, "worker_cpu_ms_per_step_median", 3)),
            ("  empty burst (start-up and exit), median s", get(mode, "empty_burst_seconds", 2)),
        ]
    out += [
        ("steps/s drop, all on against off (medians)", drop()),
        (
            "steps/s, tracing only (OTel SDK, metrics off), median",
            get("tracing", "steps_per_second"),
        ),
        ("  drop; worker CPU ms/step", part_of("tracing")),
        ("steps/s, metrics only, median", get("metrics", "steps_per_second")),
        ("  drop; worker CPU ms/step", part_of("metrics")),
        (
            "steps/s over the tasks' span in the database, off / on",
            steady("steps_per_second_in_db_span"),
        ),
        ("  drop", drop("drop_in_db_span")),
        ("steps/s less the empty burst's time, off / on", steady("steps_per_second_net")),
        ("  drop", drop("drop_net")),
        ("  'on' worker: spans exported / step attempts counted", recorded),
        ("hooks, everything off: ns per step", hook("per_step_ns")),
        ("  observe.step_started (ns)", part("step_started")),
        ("  logs.task_context (ns)", part("task_context")),
        ("  observe.step_finished (ns)", part("step_finished")),
        ("  send_on_commit of an unheard signal (ns)", part("send_on_commit_unheard")),
        ("  tracing.enabled() without an SDK (ns)", part("tracing_enabled")),
        ("  / the worker's CPU per step (off)", share()),
        ("hooks, all on (in-process): us per step", on()),
        ("  observe.step_started: its span opened (us)", on("step_started")),
        ("  observe.step_finished: span ended, signal to the metrics (us)", on("step_finished")),
        ("  / the worker's CPU per step (off)", share("hooks_on", 1)),
    ]
    return out


def targets(measured: dict[str, Result]) -> list[tuple[str, bool | None, str]]:
    """The targets of the observability section (issue 18), printed, never asserted."""
    out: list[tuple[str, bool | None, str]] = []
    for backend, r in measured.items():
        o = r.get("observability")
        if not o:
            continue
        off, on = o["off"]["steps_per_second"], o["on"]["steps_per_second"]
        out.append(
            (
                f"steps/s drop with an OTel SDK and metrics on <= {100 * TARGET_DROP:.0f}% "
                f"({backend})",
                o["drop"] <= TARGET_DROP,
                f"{on:,.0f} vs {off:,.0f} steps/s: {100 * o['drop']:.1f}% (over the tasks' "
                f"span in the database: {_pct(o.get('drop_in_db_span'))}; less the start-up: "
                f"{_pct(o.get('drop_net'))})",
            )
        )
        hooks = o["hooks"]
        out.append(
            (
                f"hooks with everything off < {100 * TARGET_HOOKS_SHARE:.0f}% of a step's "
                f"worker CPU ({backend})",
                hooks["share_of_cpu_per_step"] < TARGET_HOOKS_SHARE,
                f"{hooks['per_step_ns']:,.0f} ns of {hooks['worker_cpu_ns_per_step']:,.0f} ns: "
                f"{100 * hooks['share_of_cpu_per_step']:.3f}%",
            )
        )
    return out
