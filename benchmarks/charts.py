"""The two charts of ``docs/benchmarks.md``, drawn with matplotlib (the ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.servers import Result

CONCURRENCY_CHART = "benchmark-concurrency.png"
LATENCY_CHART = "benchmark-latency-cdf.png"


def render(results: Result, directory: Path) -> list[Path]:
    """Draw steps/s against concurrency and the CDF of submit -> start; returns the files."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    directory.mkdir(parents=True, exist_ok=True)
    facts = results["machine"]
    caption = f"{facts['date'][:10]}, {facts['cores']} cores, Python {facts['python']}"
    written = []

    figure, axes = plt.subplots(figsize=(8, 5))
    for name, r in results["backends"].items():
        sweep = r.get("sweep") or {}
        if sweep:
            levels = sorted(int(c) for c in sweep)
            axes.plot(levels, [sweep[str(c)] for c in levels], marker="o", label=f"salvador {name}")
    for name, p in results["peers"].items():
        sweep = p.get("sweep") or {}
        if sweep:
            levels = sorted(int(c) for c in sweep)
            axes.plot(
                levels, [sweep[str(c)] for c in levels], marker="s", linestyle="--", label=name
            )
    axes.set_xscale("log", base=2)
    axes.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
    axes.set_xlabel("worker concurrency (one process)")
    axes.set_ylabel("steps/s (3 no-op steps per workflow)")
    axes.set_title(f"Throughput against concurrency ({caption})")
    axes.grid(True, alpha=0.3)
    if axes.lines:
        axes.legend(fontsize="small")
    figure.tight_layout()
    written.append(directory / CONCURRENCY_CHART)
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(8, 5))
    curves = {
        f"salvador {n}": r.get("latency", {}).get("start_samples_ms")
        for n, r in results["backends"].items()
    } | {n: p.get("latency", {}).get("start_ms") for n, p in results["peers"].items()}
    for label, samples in curves.items():
        if samples:
            ordered = sorted(samples)
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            axes.step(ordered, fractions, where="post", label=label)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ScalarFormatter())
    longest = max((max(v) for v in curves.values() if v), default=100.0)
    ticks = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
    axes.set_xticks([t for t in ticks if t <= longest * 1.5])
    axes.set_xlim(1, longest * 1.2)
    axes.set_xlabel("submit -> step 1 start, ms (log scale)")
    axes.set_ylabel("fraction of tasks")
    axes.set_title(f"Latency distribution, one task at a time ({caption})")
    axes.grid(True, alpha=0.3, which="both")
    if axes.lines:
        axes.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    written.append(directory / LATENCY_CHART)
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)
    return written
