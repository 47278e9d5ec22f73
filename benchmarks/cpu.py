"""CPU accounting from Linux ``/proc``: where a burst's CPU time goes.

Two readings, each taken before and after a run: the machine's busy share of its
cores (``/proc/stat``), and the CPU time of the local database server: PostgreSQL's
processes, including backends that have exited (the postmaster's reaped children),
or MariaDB's one ``mariadbd`` process (every thread of it). Elsewhere than Linux, or
with a remote server, they read None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSnapshot:
    """Cumulative machine jiffies (busy, total) and the server's CPU seconds at one moment.

    ``server`` names the figure: ``postgres`` or ``mariadb`` (``None``: not read).
    """

    busy: int
    total: int
    server_seconds: float | None
    server: str | None = None

    def since(self, before: CpuSnapshot, cores: int) -> dict[str, float | None]:
        """Busy share of the machine, and the server's CPU seconds, from ``before`` to now."""
        total = self.total - before.total
        server = (
            None
            if self.server_seconds is None or before.server_seconds is None
            else self.server_seconds - before.server_seconds
        )
        return {
            "machine_busy_share": (self.busy - before.busy) / total if total else None,
            "machine_cores": cores,
            # SQLite keeps the key it always had, read as None.
            f"{self.server or 'postgres'}_cpu_seconds": server,
        }


#: The process names of each server whose CPU time is read (``mysqld``: before 10.5).
_PROCESSES = {"postgres": ("postgres",), "mariadb": ("mariadbd", "mysqld")}


def _server_seconds(processes: tuple[str, ...]) -> float | None:
    """CPU seconds of every process named one of ``processes``, with the children they
    reaped."""
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
        if name not in processes:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[11..14] are utime, stime, cutime, cstime (stat's fields 14 to 17)
        seconds += sum(int(v) for v in fields[11:15]) / _TICK
        found = True
    return seconds if found else None


def snapshot(local_postgres: bool, local_mariadb: bool = False) -> CpuSnapshot | None:
    """The counters now; None where ``/proc/stat`` cannot be read."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return None
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    server = "postgres" if local_postgres else "mariadb" if local_mariadb else None
    return CpuSnapshot(
        busy=sum(values) - idle,
        total=sum(values),
        server_seconds=_server_seconds(_PROCESSES[server]) if server else None,
        server=server,
    )
