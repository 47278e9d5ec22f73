"""CPU accounting from Linux ``/proc``: where a burst's CPU time goes.

Two readings, each taken before and after a run: the machine's busy share of its
cores (``/proc/stat``), and the CPU time of the local PostgreSQL server's
processes, including backends that have exited (the postmaster's reaped children).
Elsewhere than Linux, or with a remote server, they read None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSnapshot:
    """Cumulative machine jiffies (busy, total) and PostgreSQL CPU seconds at one moment."""

    busy: int
    total: int
    postgres_seconds: float | None

    def since(self, before: CpuSnapshot, cores: int) -> dict[str, float | None]:
        """Busy share of the machine, and the server's CPU seconds, from ``before`` to now."""
        total = self.total - before.total
        server = (
            None
            if self.postgres_seconds is None or before.postgres_seconds is None
            else self.postgres_seconds - before.postgres_seconds
        )
        return {
            "machine_busy_share": (self.busy - before.busy) / total if total else None,
            "machine_cores": cores,
            "postgres_cpu_seconds": server,
        }


def _postgres_seconds() -> float | None:
    """CPU seconds of every process named ``postgres``, with the children they reaped."""
    seconds = 0.0
    found = False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name != "postgres":
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[11..14] are utime, stime, cutime, cstime (stat's fields 14 to 17)
        seconds += sum(int(v) for v in fields[11:15]) / _TICK
        found = True
    return seconds if found else None


def snapshot(local_postgres: bool) -> CpuSnapshot | None:
    """The counters now; None where ``/proc/stat`` cannot be read."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return None
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return CpuSnapshot(
        busy=sum(values) - idle,
        total=sum(values),
        postgres_seconds=_postgres_seconds() if local_postgres else None,
    )
