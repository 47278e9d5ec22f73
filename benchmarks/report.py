"""The printed report of ``benchmarks/run.py``: tables, peers side by side, and targets."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from benchmarks import (
    cost_report,
    graphs,
    mariadb_report,
    observability_report,
    schedules_report,
    tasks_report,
)
from benchmarks.measure import RAW_SECONDS, STEPS
from benchmarks.servers import Result, percentile

Row = tuple[str, Callable[[Result], str]]


def fmt(value: Any, digits: int = 0) -> str:
    """A figure for a table cell; ``-`` when it was not measured."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def print_table(columns: dict[str, Result], rows: list[Row]) -> None:
    """One row per metric, one column per key of ``columns``."""
    names = list(columns)
    width = max(len(label) for label, _ in rows)
    cols = [max(12, len(n), *(len(get(columns[n])) for _, get in rows)) for n in names]
    print(" | ".join([" " * width, *(n.rjust(w) for n, w in zip(names, cols, strict=True))]))
    print("-+-".join(["-" * width, *("-" * w for w in cols)]))
    for label, get in rows:
        cells = [get(columns[n]).rjust(w) for n, w in zip(names, cols, strict=True)]
        print(" | ".join([label.ljust(width), *cells]))


def _backend_rows(concurrency: int) -> list[Row]:
    c = str(concurrency)

    def tp(key: str, digits: int = 0, section: str = "throughput") -> Callable[[Result], str]:
        return lambda r: fmt(r.get(section, {}).get(key), digits)

    def ratio(key: str) -> Callable[[Result], str]:
        def get(r: Result) -> str:
            steps = r.get("throughput", {}).get(key)
            raw = r.get("raw_commits_per_second", {}).get(c)
            return fmt(steps / raw, 3) if steps and raw else "-"

        return get

    def lat(kind: str) -> Callable[[Result], str]:
        def get(r: Result) -> str:
            s = r.get("latency", {}).get(kind)
            return f"{s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f}" if s else "-"

        return get

    def runs(section: str) -> Callable[[Result], str]:
        def get(r: Result) -> str:
            values = r.get(section, {}).get("tasks_per_second_runs") or []
            return ", ".join(f"{v:.0f}" for v in values) or "-"

        return get

    def raw(key: str) -> Callable[[Result], str]:
        return lambda r: fmt(r.get("raw_commits_per_second", {}).get(key))

    return [
        ("tasks/s (burst, incl. startup)", tp("tasks_per_second")),
        ("tasks/s (startup subtracted)", tp("tasks_per_second_minus_startup")),
        ("tasks/s of each run (the median run shown)", runs("throughput")),
        ("steps/s (burst, incl. startup)", tp("steps_per_second")),
        ("steps/s (startup subtracted)", tp("steps_per_second_minus_startup")),
        ("steps/s (in-DB span: 1st claim..last finish)", tp("steps_per_second_in_db_span")),
        (f"tasks/s, --pool processes (C={c})", tp("tasks_per_second", 0, "throughput_processes")),
        (f"steps/s, --pool processes (C={c})", tp("steps_per_second", 0, "throughput_processes")),
        ("burst wall time, s", tp("seconds", 2)),
        ("worker CPU (user+sys) per step, ms", tp("worker_cpu_ms_per_step", 2)),
        ("PostgreSQL server CPU per step, ms (local)", tp("postgres_cpu_ms_per_step", 2)),
        ("MariaDB server CPU per step, ms (local)", tp("mariadb_cpu_ms_per_step", 2)),
        ("machine busy during burst, share of cores", tp("machine_busy_share", 2)),
        ("worker startup (empty --burst), s", lambda r: fmt(r.get("startup_seconds"), 2)),
        ("raw commits/s, 1 conn", raw("1")),
        (f"raw commits/s, {c} conns", raw(c)),
        (
            "raw Redis LPUSH+BRPOP pairs/s, 1 client",
            lambda r: fmt(r.get("raw_redis_pairs_per_second")),
        ),
        (f"steps/s / raw commits/s ({c} conns)", ratio("steps_per_second")),
        ("  same, startup subtracted", ratio("steps_per_second_minus_startup")),
        ("commits/step, total (PG, MariaDB)", tp("commits_per_step", 3)),
        ("(commits - claims)/step (PG, MariaDB)", tp("commits_minus_claims_per_step", 3)),
        (
            "  same, minus an empty run's commits (PG, MariaDB)",
            tp("happy_path_commits_per_step", 3),
        ),
        ("worker commits/s during burst (PG, MariaDB)", tp("commits_per_second")),
        (
            "commits of an empty --burst run (PG, MariaDB)",
            lambda r: fmt(r.get("empty_burst_commits")),
        ),
        ("idle worker commits/s (PG, MariaDB)", lambda r: fmt(r.get("idle_commits_per_second"), 1)),
        ("submit -> step 1 start, p50/p95/p99 ms", lat("start_ms")),
        ("submit -> completed seen, p50/p95/p99 ms", lat("complete_ms")),
        ("submit -> finished_at (DB), p50/p95/p99 ms", lat("finished_at_ms")),
        ("SIGTERM exit code", lambda r: fmt(r.get("latency", {}).get("sigterm_exit_code"))),
        ("submit() rate, tasks/s (untimed setup)", lambda r: fmt(r.get("submit_per_second"))),
    ]


def _measured_rows(columns: dict[str, Result], rows: list[Row]) -> list[Row]:
    """The rows with a figure in at least one column (a section left out has none)."""
    return [row for row in rows if any(row[1](c) != "-" for c in columns.values())]


def _print_backends(measured: dict[str, Result], concurrency: int) -> None:
    backend_rows = _measured_rows(measured, _backend_rows(concurrency))
    if backend_rows:
        print_table(measured, backend_rows)
    sweeps = {n: r["sweep"] for n, r in measured.items() if r.get("sweep")}
    if sweeps:
        print("\nsteps/s against worker concurrency (threads, one process):")
        levels = sorted({int(c) for s in sweeps.values() for c in s})
        print_table(
            sweeps,
            [(f"concurrency {c}", lambda s, c=c: fmt(s.get(str(c)))) for c in levels],
        )
    scales = {n: r["scale"] for n, r in measured.items() if r.get("scale")}
    if scales:
        print("\nscale: finished tasks already in the table (claim p50/p95 ms; burst steps/s):")
        levels = sorted({int(h) for s in scales.values() for h in s})
        rows: list[Row] = []
        for h in levels:

            def claim(s: Result, h: int = h) -> str:
                c = s.get(str(h), {}).get("claim_ms")
                return f"{c['p50']:.2f} / {c['p95']:.2f}" if c else "-"

            def steps(s: Result, h: int = h) -> str:
                return fmt(s.get(str(h), {}).get("steps_per_second"))

            rows += [(f"{h:>9,} rows: claim ms", claim), (f"{h:>9,} rows: steps/s", steps)]
        print_table(scales, rows)
    memory = {n: r["memory_rss_mib"] for n, r in measured.items() if r.get("memory_rss_mib")}
    if memory:
        print("\nworker RSS (MiB) after n tasks, one long-running worker:")
        counts = sorted({int(n) for m in memory.values() for n in m})
        print_table(
            memory, [(f"after {n:,} tasks", lambda m, n=n: fmt(m.get(str(n)), 1)) for n in counts]
        )
    waits = {n: r["waits"] for n, r in measured.items() if r.get("waits")}
    if waits:
        print("\nwaits: signals and timers to one long-running worker; waiting tasks' cost:")
        print_table(waits, _measured_rows(waits, _waits_rows(waits)))


def _print_fan_out(measured: dict[str, Result], peers: dict[str, Result]) -> None:
    """Our fan-out on each backend, and Celery's chord beside it."""
    columns = {n: r["fan_out"] for n, r in measured.items() if r.get("fan_out")}
    columns |= {n: p["fan_out"] for n, p in peers.items() if p.get("fan_out")}
    if not columns:
        return
    print(
        "\nfan-out: a parent mapping N no-op children (Celery: a chord of N) against N "
        "independent\nno-op tasks on the same long-running worker (median of the runs):"
    )
    print_table(columns, _measured_rows(columns, _fan_out_rows(columns)))


def _print_graph(measured: dict[str, Result], concurrency: int) -> None:
    """The graph section: a diamond beside a straight line; 8 parallel steps' wall time."""
    columns = {n: r["graph"] for n, r in measured.items() if r.get("graph")}
    if not columns:
        return
    print(
        "\ngraph: a diamond (1 -> 4 at the same time -> 1) of no-op steps beside a straight "
        "line of\n6 no-op steps, burst workers (median runs); 8 independent 100 ms steps, "
        "one task at a time:"
    )
    print_table(columns, _measured_rows(columns, graphs.rows(concurrency)))


def _print_schedules(measured: dict[str, Result]) -> None:
    """The schedules section: a tick round's cost with many schedules, ticks/s, lateness."""
    columns = {n: r["schedules"] for n, r in measured.items() if r.get("schedules")}
    if columns:
        print("\nschedules: tick rounds with many schedules in the table; ticks/s; lateness:")
        print_table(columns, _measured_rows(columns, schedules_report.rows(columns)))


def _print_django_tasks(measured: dict[str, Result]) -> None:
    """The django-tasks section: our backend against django-tasks-db's db_worker."""
    columns = {n: r["django_tasks"] for n, r in measured.items() if r.get("django_tasks")}
    if columns:
        print("\ndjango-tasks: one-step Django tasks, ours against django-tasks-db's db_worker:")
        print_table(columns, _measured_rows(columns, tasks_report.rows(columns)))


def _print_observability(measured: dict[str, Result], concurrency: int) -> None:
    """The observability section: steps/s with everything off and all on; the hooks' cost."""
    columns = {n: r["observability"] for n, r in measured.items() if r.get("observability")}
    if columns:
        print("\nobservability: burst steps/s with signals, tracing and metrics off and all on:")
        print_table(columns, _measured_rows(columns, observability_report.rows(concurrency)))


def _fan_out_rows(columns: dict[str, Result]) -> list[Row]:
    sizes = sorted({int(n) for c in columns.values() for n in c.get("sizes", {})})
    rows: list[Row] = []
    for n in sizes:

        def at(key: str, digits: int = 2, n: int = n) -> Callable[[Result], str]:
            return lambda c: fmt(c.get("sizes", {}).get(str(n), {}).get(key), digits)

        def runs(key: str, n: int = n) -> Callable[[Result], str]:
            def get(c: Result) -> str:
                values = c.get("sizes", {}).get(str(n), {}).get(key) or []
                return ", ".join(f"{v:.{1 if key.endswith('ms_runs') else 2}f}" for v in values)

            return lambda c: get(c) or "-"

        rows += [
            (f"{n:>6,}: fan-out, s", at("fan_out_seconds")),
            (f"{n:>6,}: fan-out, s, each run", runs("fan_out_seconds_runs")),
            (f"{n:>6,}: independent tasks, s", at("independent_seconds")),
            (f"{n:>6,}: independent tasks, s, each run", runs("independent_seconds_runs")),
            (f"{n:>6,}: fan-out / independent", at("ratio")),
            (f"{n:>6,}: fan-out, ms per child", at("fan_out_ms_per_child")),
            (f"{n:>6,}: independent, ms per task", at("independent_ms_per_task")),
            (f"{n:>6,}: resume after the last child, ms, each run", runs("resume_ms_runs")),
            (f"{n:>6,}: replay of the waiting step, ms, each run", runs("replay_ms_runs")),
        ]
    if len(sizes) >= 2:
        low, high = str(sizes[0]), str(sizes[-1])

        def flat(c: Result) -> str:
            s = c.get("sizes", {})
            if low not in s or high not in s:
                return "-"
            ratio = s[high]["fan_out_ms_per_child"] / s[low]["fan_out_ms_per_child"]
            return f"{ratio:.2f}x"

        rows.append((f"ms per child at {sizes[-1]:,} / at {sizes[0]:,}", flat))

    def resume(key: str) -> Callable[[Result], str]:
        return lambda c: _three(c.get("resume", {}).get(key))

    rows += [
        ("resume after the last child finished, p50/p95/p99 ms", resume("resume_ms")),
        ("resume after its step returned, p50/p95/p99 ms", resume("resume_after_step_ms")),
        ("woken step's start after the last finish, p50/p95/p99", resume("woken_ms")),
        ("  one fan-out of those, p50/p95/p99 ms", resume("fan_out_ms")),
        ("  children each, parents measured", lambda c: (
            f"{c['latency_children']}, {c['resume']['resume_ms']['n']}" if c.get("resume")
            else "-")),
        ("machine busy during the section, share", lambda c: fmt(
            c.get("machine_busy_share"), 2)),
    ]  # fmt: skip
    return rows


def _three(s: Result | None) -> str:
    return f"{s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f}" if s else "-"


def _waits_rows(waits: dict[str, Result]) -> list[Row]:
    def signal_over_raw(w: Result) -> str:
        trip = w.get("signal", {}).get("round_trip_ms")
        raw = w.get("raw_wakeup_ms")
        return f"{trip['p50'] / raw['p50']:.1f}x" if trip and raw else "-"

    def timers(key: str, digits: int = 1) -> Callable[[Result], str]:
        return lambda w: fmt(w.get("timers", {}).get(key), digits)

    rows: list[Row] = [
        ("raw wake-up (NOTIFY->LISTEN, LPUSH->BRPOP), p50/p95/p99 ms", lambda w: _three(
            w.get("raw_wakeup_ms"))),
        ("send_signal() -> step running again, p50/p95/p99 ms", lambda w: _three(
            w.get("signal", {}).get("round_trip_ms"))),
        ("  p50 / raw wake-up p50", signal_over_raw),
        ("send_signal() call with its commit, p50 ms", lambda w: fmt(
            w.get("signal", {}).get("send_ms", {}).get("p50"), 2)),
        ("timer lateness, p50/p95/p99 ms", lambda w: _three(
            w.get("timers", {}).get("lateness_ms"))),
        ("timer lateness, min / max ms", lambda w: (
            "-" if not w.get("timers") else
            f"{w['timers']['lateness_ms']['min']:.1f} / {w['timers']['lateness_ms']['max']:.1f}")),
        ("DB clock - process clock, ms (corrected for)", timers("clock_offset_ms", 2)),
        ("machine busy during signals / timers, share", lambda w: (
            f"{fmt(w.get('signal', {}).get('machine_busy_share'), 2)} / "
            f"{fmt(w.get('timers', {}).get('machine_busy_share'), 2)}"
            if w.get("signal") else "-")),
    ]  # fmt: skip
    levels = sorted({int(n) for w in waits.values() for n in w.get("waiting", {})})
    for n in levels:

        def at(w: Result, n: int = n) -> Result:
            figures: Result = w.get("waiting", {}).get(str(n), {})
            return figures

        def claim(w: Result, at: Callable[[Result], Result] = at) -> str:
            c = at(w).get("claim_ms")
            return f"{c['p50']:.2f} / {c['p95']:.2f}" if c else "-"

        def idle(key: str, at: Callable[[Result], Result] = at) -> Callable[[Result], str]:
            return lambda w: fmt(at(w).get("idle", {}).get(key), 1)

        def pages(w: Result, at: Callable[[Result], Result] = at) -> str:
            i = at(w).get("idle", {})
            hit, read = i.get("blks_hit_per_second"), i.get("blks_read_per_second")
            return "-" if hit is None or read is None else fmt(hit + read, 1)

        def idle_rss(at: Callable[[Result], Result]) -> Callable[[Result], str]:
            return lambda w: fmt(at(w).get("rss_mib"), 1)

        label = f"{n:>7,} waiting:"
        rows += [
            (f"{label} claim p50/p95 ms", claim),
            (f"{label} idle worker statements/s", idle("statements_per_second")),
            (f"{label} idle worker commits/s (PG)", idle("xact_commit_per_second")),
            (f"{label} idle worker rows read/s (PG)", idle("tup_returned_per_second")),
            (f"{label} idle worker pages touched/s (PG)", pages),
            (f"{label} worker RSS, MiB", idle_rss(at)),
        ]
    return rows


def peer_p50(peer: Result) -> float | None:
    """The median submit -> step 1 start of a peer, in ms."""
    samples = peer.get("latency", {}).get("start_ms") or []
    return percentile(samples, 50) if samples else None


def ours_best(measured: dict[str, Result]) -> tuple[str, float] | None:
    """Our best tasks/s at the run's concurrency: (label, tasks/s)."""
    best: tuple[str, float] | None = None
    for name, r in measured.items():
        for key, pool in (("throughput", "threads"), ("throughput_processes", "processes")):
            value = r.get(key, {}).get("tasks_per_second")
            if value and (best is None or value > best[1]):
                best = (f"{name} ({pool})", value)
    return best


def _print_peers(measured: dict[str, Result], peers: dict[str, Result]) -> None:
    best = ours_best(measured)
    print("\npeers on the same workload (3 no-op steps, one worker process, this run):")
    header = ("who", "tasks/s", "p50 start ms", "p50 complete ms", "ours / theirs")
    rows: list[tuple[str, ...]] = [header]
    for name, r in measured.items():
        latency = r.get("latency", {})
        for key, pool in (("throughput", "threads"), ("throughput_processes", "processes")):
            t = r.get(key)
            if t:
                rows.append(
                    (
                        f"salvador {name}, --pool {pool} -c {t['concurrency']}",
                        fmt(t["tasks_per_second"]),
                        fmt(latency.get("start_ms", {}).get("p50"), 1),
                        fmt(latency.get("complete_ms", {}).get("p50"), 1),
                        "",
                    )
                )
    for name, p in peers.items():
        tps = p.get("throughput", {}).get("tasks_per_second")
        complete = p.get("latency", {}).get("complete_ms") or []
        versus = f"{best[1] / tps:.2f}x" if best and tps else "-"
        rows.append(
            (
                f"{name} -c {p.get('concurrency', '?')}",
                fmt(tps),
                fmt(peer_p50(p), 1),
                fmt(percentile(complete, 50) if complete else None, 1),
                "failed" if p.get("errors") else versus,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [
            row[0].ljust(widths[0]),
            *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)),
        ]
        print("  ".join(cells))
    if best:
        print(f"ours / theirs: our best ({best[0]}, {best[1]:,.0f} tasks/s) / theirs")
    for name, p in peers.items():
        print(f"- {name}: {p.get('settings', '')}")


def targets(
    measured: dict[str, Result], peers: dict[str, Result], concurrency: int
) -> list[tuple[str, bool | None, str]]:
    """Each target of the benchmark: (target, met, the figure); met is None if unmeasured."""
    out: list[tuple[str, bool | None, str]] = []
    pg = measured.get("postgres", {})
    happy = pg.get("throughput", {}).get("happy_path_commits_per_step")
    out.append(
        (
            "<= 1.0 commit per step on the happy path, plus one claim per task (PostgreSQL)",
            None if happy is None else happy <= 1.0 + 1e-3,
            "-" if happy is None else f"{happy:.3f} commits/step besides claims",
        )
    )
    steps = pg.get("throughput", {}).get("steps_per_second")
    raw = pg.get("raw_commits_per_second", {}).get(str(concurrency))
    out.append(
        (
            f"steps/s >= 0.5 x raw commits/s on PostgreSQL ({concurrency} connections)",
            None if not (steps and raw) else steps / raw >= 0.5,
            "-" if not (steps and raw) else f"{steps:,.0f} / {raw:,.0f} = {steps / raw:.3f}",
        )
    )
    for backend, bound, why in (
        ("postgres+redis", 5.0, "5 ms"),
        ("postgres", 10.0, "10 ms"),
        ("sqlite", None, "the poll interval"),
    ):
        r = measured.get(backend, {})
        lat = r.get("latency", {})
        p50 = lat.get("start_ms", {}).get("p50")
        limit = bound if bound is not None else lat.get("poll_interval", 0) * 1000 or None
        out.append(
            (
                f"p50 submit -> start <= {why} ({backend})",
                None if p50 is None or limit is None else p50 <= limit,
                "-" if p50 is None else f"{p50:.1f} ms (limit {limit:.0f} ms)",
            )
        )
    ok = [p for p in peers.values() if not p.get("errors") and p.get("throughput")]
    best_peer = max(ok, key=lambda p: p["throughput"]["tasks_per_second"], default=None)
    best = ours_best(measured)
    if best_peer and best:
        theirs = best_peer["throughput"]["tasks_per_second"]
        out.append(
            (
                "throughput >= 2 x the best peer",
                best[1] >= 2 * theirs,
                f"{best[0]} {best[1]:,.0f} tasks/s vs {best_peer['peer']} {theirs:,.0f}: "
                f"{best[1] / theirs:.2f}x",
            )
        )
    else:
        out.append(("throughput >= 2 x the best peer", None, "no peer measured"))
    for backend, r in measured.items():
        scale = r.get("scale", {})
        levels = sorted(int(h) for h in scale)
        if len(levels) >= 2 and levels[0] == 0:
            empty, top = scale["0"]["claim_ms"]["p50"], scale[str(levels[-1])]["claim_ms"]["p50"]
            out.append(
                (
                    f"claim latency at {levels[-1]:,} rows <= 1.2 x empty ({backend})",
                    top <= 1.2 * empty,
                    f"{top:.2f} ms vs {empty:.2f} ms: {top / empty:.2f}x",
                )
            )
    out += waits_targets(measured)
    out += fan_out_targets(measured)
    out += graphs.targets(measured)
    out += schedules_report.targets(measured)
    out += tasks_report.targets(measured)
    out += observability_report.targets(measured)
    out += cost_report.targets(measured, peers, concurrency)
    return out


def fan_out_targets(measured: dict[str, Result]) -> list[tuple[str, bool | None, str]]:
    """The targets of the fan-out section (issue 15): wall time, resume latency, flatness."""
    out: list[tuple[str, bool | None, str]] = []
    for backend, r in measured.items():
        sizes = r.get("fan_out", {}).get("sizes", {})
        if not sizes:
            continue
        low, high = min(sizes, key=int), max(sizes, key=int)
        ratio = sizes[low]["ratio"]
        out.append(
            (
                f"fan-out of {int(low):,} <= 1.5 x {int(low):,} independent tasks ({backend})",
                ratio <= 1.5,
                f"{sizes[low]['fan_out_seconds']:.2f}s vs "
                f"{sizes[low]['independent_seconds']:.2f}s: {ratio:.2f}x",
            )
        )
        if high != low:
            a, b = sizes[high]["fan_out_ms_per_child"], sizes[low]["fan_out_ms_per_child"]
            out.append(
                (
                    f"time per child flat from {int(low):,} to {int(high):,} children, <= 1.25x "
                    f"({backend})",
                    a <= 1.25 * b,
                    f"{a:.2f} vs {b:.2f} ms: {a / b:.2f}x",
                )
            )
    for backend in ("postgres", "postgres+redis"):
        got = measured.get(backend, {}).get("fan_out", {}).get("resume", {}).get("resume_ms")
        out.append(
            (
                f"p50 parent resumes <= 50 ms after its last child finished ({backend})",
                None if got is None else got["p50"] <= 50.0,
                "-" if got is None else f"p50 {got['p50']:.1f} ms, p95 {got['p95']:.1f} ms",
            )
        )
    return out


def waits_targets(measured: dict[str, Result]) -> list[tuple[str, bool | None, str]]:
    """The targets of the waits section (issue 14): signals, timers, waiting tasks."""
    out: list[tuple[str, bool | None, str]] = []
    for backend in ("postgres", "postgres+redis"):
        trip = measured.get(backend, {}).get("waits", {}).get("signal", {}).get("round_trip_ms")
        out.append(
            (
                f"p50 send_signal() -> step running again <= 10 ms ({backend})",
                None if trip is None else trip["p50"] <= 10.0,
                "-" if trip is None else f"{trip['p50']:.1f} ms",
            )
        )
    for backend in ("postgres", "postgres+redis", "sqlite"):
        timers = measured.get(backend, {}).get("waits", {}).get("timers")
        poll = measured.get(backend, {}).get("waits", {}).get("signal", {}).get("poll_interval")
        limit = 50.0 if backend != "sqlite" else (1000 * poll if poll else None)
        late = timers["lateness_ms"] if timers else None
        out.append(
            (
                f"timer lateness p99 <= {'50 ms' if backend != 'sqlite' else 'the poll interval'}"
                f" ({backend})",
                None if late is None or limit is None else late["p99"] <= limit,
                "-"
                if late is None
                else f"p99 {late['p99']:.1f} ms, max {late['max']:.1f} ms (limit {limit:.0f} ms)",
            )
        )
    for backend, r in measured.items():
        waiting = r.get("waits", {}).get("waiting", {})
        levels = sorted(int(n) for n in waiting)
        if len(levels) < 2 or levels[0] != 0:
            continue
        top, empty = waiting[str(levels[-1])], waiting["0"]
        n = f"{levels[-1]:,}"
        if top.get("claim_ms") and empty.get("claim_ms"):
            a, b = top["claim_ms"]["p50"], empty["claim_ms"]["p50"]
            out.append(
                (
                    f"claim latency with {n} waiting <= 1.2 x empty ({backend})",
                    a <= 1.2 * b,
                    f"{a:.2f} ms vs {b:.2f} ms: {a / b:.2f}x",
                )
            )
        out.append(_idle_target(backend, levels[-1], top["idle"], empty["idle"]))
        if top.get("rss_mib") and empty.get("rss_mib"):
            grew = top["rss_mib"] - empty["rss_mib"]
            out.append(
                (
                    f"worker RSS with {n} waiting <= empty + 2 MiB ({backend})",
                    grew <= 2.0,
                    f"{top['rss_mib']:.1f} vs {empty['rss_mib']:.1f} MiB ({grew:+.1f})",
                )
            )
    return out


def _idle_target(
    backend: str, level: int, top: Result, empty: Result
) -> tuple[str, bool | None, str]:
    """No per-task work when idle: as many statements, and (PostgreSQL) no rows per task.

    A pass over the waiting tasks in each sweep (every second there) would read at
    least ``level`` rows a second; the bound is a hundredth of that.
    """
    a, b = top["statements_per_second"], empty["statements_per_second"]
    met = a <= 1.2 * b
    figure = f"{a:.1f} vs {b:.1f} statements/s"
    rows_top, rows_empty = top.get("tup_returned_per_second"), empty.get("tup_returned_per_second")
    if rows_top is not None and rows_empty is not None:
        met = met and rows_top - rows_empty <= level / 100
        figure += f"; rows read {rows_top:,.0f} vs {rows_empty:,.0f}/s"
    return (f"idle worker: no per-task work with {level:,} waiting ({backend})", met, figure)


def print_report(results: Result) -> None:
    """Print every table, the peers and the targets."""
    facts, args = results["machine"], results["args"]
    measured = {name: r for name, r in results["backends"].items() if "error" not in r}
    print()
    print(
        f"salvador-django benchmark, {facts['date']}: {args['tasks']} tasks x {STEPS} steps, "
        f"concurrency {args['concurrency']}, {args['latency_samples']} latency samples, "
        f"POLL_INTERVAL {os.environ.get('SALVADOR_BENCH_POLL_INTERVAL', '0.05')} s"
    )
    print(
        f"machine: {facts['cores']} cores, {facts['platform']}; Python {facts['python']}, "
        f"Django {facts['django']}, SQLite {facts['sqlite']}"
    )
    for name, r in measured.items():
        server = ", ".join(f"{k} {v}" for k, v in r.get("server", {}).items())
        print(f"{name}: {server}")
        if r.get("commits_not_measured"):
            print(f"{name}: commits not measured on MariaDB: {r['commits_not_measured']}")
        if r.get("mysql_other_sessions"):
            print(
                f"{name}: NOTE {r['mysql_other_sessions']} other client session(s) of the "
                "server seen at a commit reading: its commit counts may include theirs"
            )
    print()
    if measured:
        _print_backends(measured, args["concurrency"])
    else:
        print("No backend was measured.")
    if results["peers"]:
        _print_peers(measured, results["peers"])
    _print_fan_out(measured, results.get("fan_out_peers", {}))
    _print_graph(measured, args["concurrency"])
    _print_schedules(measured)
    _print_django_tasks(measured)
    _print_observability(measured, args["concurrency"])
    for name, p in results.get("fan_out_peers", {}).items():
        print(f"- {name}: {p.get('settings', '')}")
    if results.get("fan_out_peers_skipped"):
        print(f"- Celery's chord was not measured: {results['fan_out_peers_skipped']}")
    print("\ntargets:")
    for label, met, figure in targets(measured, results["peers"], args["concurrency"]):
        verdict = {True: "MET", False: "NOT MET", None: "not measured"}[met]
        print(f"  [{verdict}] {label}: {figure}")
    mariadb = mariadb_report.targets(measured, args["concurrency"])
    if mariadb:
        print("\nMariaDB targets:")
        for label, met, figure in mariadb:
            verdict = {True: "MET", False: "NOT MET", None: "not measured"}[met]
            print(f"  [{verdict}] {label}: {figure}")
    print(
        "\nWhat is counted (docs/benchmarks.md says more):\n"
        "- raw commits/s: single-row UPDATEs in autocommit through the raw driver (sqlite3 /\n"
        "  psycopg / mysqlclient, no Django) on the same database, each connection its own\n"
        f"  thread and row, {RAW_SECONDS:.0f} s each. Raw Redis: LPUSH then BRPOP from ONE\n"
        "  redis-py client.\n"
        "- burst: wall time of ONE `runworkflows --burst` subprocess from spawn to exit, tasks\n"
        "  submitted beforehand; 'startup subtracted' removes an empty --burst run's time.\n"
        "- commits (PostgreSQL): delta of pg_stat_database.xact_commit across the burst,\n"
        "  every transaction the worker commits, read-only ones included. MariaDB: delta of\n"
        "  InnoDB's committed transactions (INNODB_METRICS trx_rw/ro/nl_ro_commits, turned\n"
        "  on for the run), the same, but the server's: other clients add to it.\n"
        "- latency: submit() in its own transaction to an idle long-running worker; 'start'\n"
        "  is step one's time.time() minus the time taken just before submit.\n"
        "- peers: their scripts in benchmarks/peers/, the same workload, one worker process.\n"
        "- waits: 'step running again' is the woken step's own time.time() at its start,\n"
        "  minus the time taken just before send_signal(); timer lateness is that start\n"
        "  minus the Wait's until (DB clock; the measured clock offset corrected). Idle\n"
        "  statements: an in-process worker (sweeping every second), counted by a Django\n"
        "  execute wrapper; rows read and commits: pg_stat_database meanwhile.\n"
        "- fan-out: from just before submit() (independent tasks: their bulk insert; Celery:\n"
        "  chord() or the first delay()) to the last finished_at (Celery: date_done, the\n"
        "  callback's start); resume: the parent's next step's start (the callback's) minus\n"
        "  the last child's finished_at (date_done), or minus its step's return.\n"
        "- graph: bursts as above, 6 steps per task; the 8 parallel steps' time is the task's\n"
        "  started_at (its claim) to its finished_at, both the database's clock.\n"
        "- schedules: statements counted by CaptureQueriesContext; ticks/s is one round of N due\n"
        "  in this process; lateness: created_at (DB clock) and the step's time.time() minus\n"
        "  meta['scheduled_for'], ticked by one runworkflows worker.\n"
        "- django-tasks: bursts as above, of one-step Django tasks enqueued beforehand, against\n"
        "  one `db_worker --batch`; enqueue -> start is the task's time.time() (its result)\n"
        "  minus the time taken just before enqueue(), to an idle long-running worker.\n"
        "- observability: bursts as above; 'on' workers run an OTel SDK (BatchSpanProcessor,\n"
        "  in-memory exporter) and SALVADOR['METRICS']; the hooks are timed in this process\n"
        "  (best of 7 rounds of 100,000 calls, less an empty call's time)."
    )
    for name, r in results["backends"].items():
        for error in r.get("errors", []) + ([r["error"]] if "error" in r else []):
            print(f"ERROR [{name}]: {error}")
    for name, p in {**results["peers"], **results.get("fan_out_peers", {})}.items():
        for error in p.get("errors", []):
            print(f"ERROR [peer {name}]: {error}")
