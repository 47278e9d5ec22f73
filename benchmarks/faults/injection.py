"""The worker processes of a fault-injection run, and the faults it injects into them.

``Fleet`` keeps a number of ``runworkflows`` processes running: it replaces any that
exits and tells a kill it made from a death it did not. ``plan_faults`` draws the
run's timeline of faults, and ``Injector`` plays it against the fleet and the
private servers. ``push_garbage`` is the "garbage" fault of a Redis run: junk
written into every key of the queue.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.faults.checks import Fault

logger = logging.getLogger("chaos")


class Fleet:
    """``size`` worker processes, each ``runworkflows --concurrency threads``."""

    def __init__(self, size: int, threads: int, env: dict[str, str], logs: Path) -> None:
        self.threads = threads
        self.env = env
        self.logs = logs
        self.started = 0
        self.killed: set[int] = set()  # pids this run killed on purpose
        self.stopped: set[int] = set()  # pids paused with SIGSTOP right now
        self.dead: list[str] = []  # workers that exited on their own, with their logs' tails
        self.log_of: dict[int, Path] = {}
        self._lock = threading.Lock()
        self.slots = [self._spawn() for _ in range(size)]

    def _spawn(self) -> subprocess.Popen[bytes]:
        path = self.logs / f"worker-{self.started}.log"
        command = [sys.executable, "-m", "django", "runworkflows",
                   "--concurrency", str(self.threads)]  # fmt: skip
        with path.open("wb") as log:
            process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.log_of[process.pid] = path
        self.started += 1
        return process

    def pids(self) -> list[int]:
        with self._lock:
            return [process.pid for process in self.slots]

    def kill(self, rng: random.Random) -> int | None:
        """SIGKILL a random worker that is not paused and start another in its place."""
        with self._lock:
            running = [n for n, p in enumerate(self.slots) if p.pid not in self.stopped]
            if not running:
                return None
            return self._kill(rng.choice(running))

    def kill_pid(self, pid: int) -> bool:
        """SIGKILL the worker ``pid`` unless it is paused or gone; start another in its place."""
        with self._lock:
            slots = [n for n, p in enumerate(self.slots) if p.pid == pid]
            if not slots or pid in self.stopped:
                return False
            self._kill(slots[0])
            return True

    def _kill(self, slot: int) -> int:
        victim = self.slots[slot]
        self.killed.add(victim.pid)
        victim.kill()
        victim.wait()
        self.slots[slot] = self._spawn()
        return victim.pid

    def pause(
        self, rng: random.Random, prefer: int | None = None, only: bool = False
    ) -> int | None:
        """SIGSTOP a worker, ``prefer`` if it runs (with ``only``, that one or none), one
        at a time; ``resume`` SIGCONTs it."""
        with self._lock:
            running = [p for p in self.slots if p.pid not in self.stopped]
            if not running or self.stopped:
                return None
            preferred = [p for p in running if p.pid == prefer]
            if only and not preferred:
                return None
            victim = preferred[0] if preferred else rng.choice(running)
            self.stopped.add(victim.pid)
            victim.send_signal(signal.SIGSTOP)
            return victim.pid

    def resume(self, pid: int) -> None:
        with self._lock:
            self.stopped.discard(pid)
            os.kill(pid, signal.SIGCONT)

    def replace_the_dead(self) -> None:
        """Start a worker in the place of each that exited without being killed."""
        with self._lock:
            for slot, process in enumerate(self.slots):
                code = process.poll()
                if code is not None and process.pid not in self.killed:
                    tail = self._log_tail(process)
                    self.dead.append(f"pid {process.pid} exited with {code}: {tail}")
                    self.slots[slot] = self._spawn()

    def dead_threads(self) -> list[str]:
        """The threads of every worker so far that an uncaught exception ended (a
        process lives on without its maintenance thread, or with fewer runners)."""
        return [
            f"pid {pid}: {death}"
            for pid, path in sorted(self.log_of.items())
            for death in uncaught(path.read_text(errors="replace"))
        ]

    def stalls(self) -> list[Fault]:
        """The late lease renewals every worker so far logged, as ``stall`` faults of
        their process from the renewal before to the late one (see :func:`stalls_in`)."""
        return [
            stall
            for pid, path in sorted(self.log_of.items())
            for stall in stalls_in(path.read_text(errors="replace"), pid)
        ]

    def _log_tail(self, process: subprocess.Popen[bytes]) -> str:
        text = self.log_of[process.pid].read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-3:])

    @contextmanager
    def watched(self, every: float = 0.1) -> Iterator[None]:
        """While the block runs, replace the workers that die on their own."""
        done = threading.Event()

        def watch() -> None:
            while not done.wait(every):
                self.replace_the_dead()

        watcher = threading.Thread(target=watch, name="chaos-watcher", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()
            self.replace_the_dead()

    def shut_down(self, grace: float = 30) -> list[str]:
        """SIGTERM every worker; the problems: any that did not exit 0 in time."""
        problems = []
        with self._lock:
            for process in self.slots:
                if process.pid in self.stopped:
                    os.kill(process.pid, signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
            for process in self.slots:
                try:
                    code = process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    process.kill()
                    problems.append(f"worker {process.pid} did not stop within {grace:.0f}s")
                    continue
                if code != 0:
                    problems.append(f"worker {process.pid} exited with {code} on SIGTERM")
        return problems


def uncaught(log: str) -> list[str]:
    """The threads that Python reports, in a process's output ``log``, as ended by an
    uncaught exception: "thread <name>: <the exception's last line>"."""
    lines = log.splitlines()
    found = []
    for number, line in enumerate(lines):
        if line.startswith("Exception in thread "):
            # After the indented traceback (other threads' log lines may come between).
            error = next((e for e in lines[number + 2 :] if _EXCEPTION_LINE.match(e)), "?")
            found.append(f"{line.removeprefix('Exception in ').rstrip(':')}: {error}")
    return found


_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(: .*)?$")


def stalls_in(log: str, pid: int) -> list[Fault]:
    """The worker's own record of a heartbeat that renewed its leases late (the
    database slow to take the write, or the process starved of CPU): a ``stall`` from
    its renewal before to the late one, which ends when the line was logged."""
    found = []
    for match in _LATE_RENEWAL.finditer(log):
        logged = time.mktime(time.strptime(match["at"], "%Y-%m-%d %H:%M:%S"))
        end = logged + int(match["ms"]) / 1000
        found.append(Fault("stall", end - float(match["since"]), end, pid))
    return found


_LATE_RENEWAL = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(?P<ms>\d{3}) \d+ \S+ "
    r"salvador: leases renewed (?P<since>[\d.]+)s after the last renewal",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the run began
    kind: str


def plan_faults(
    rng: random.Random,
    duration: float,
    *,
    lease_seconds: float,
    redis: bool,
    postgres: bool,
    mariadb: bool = False,
    kill_every: float = 2.0,
) -> list[Planned]:
    """The run's faults: a kill every ~``kill_every`` s, a pause every ~10 s, and the
    servers' faults spread over the run (PostgreSQL or MariaDB restarted once; with
    Redis, junk pushed into the queue's keys after each of its restarts and flushes)."""
    plan = []
    moment = rng.uniform(0.5, 1.5) * kill_every
    while moment < duration:
        plan.append(Planned(moment, "kill"))
        moment += rng.uniform(0.75, 1.25) * kill_every
    moment = rng.uniform(2.0, 4.0)
    while moment < max(duration - lease_seconds, 4.0):
        plan.append(Planned(moment, "stop"))
        moment += rng.uniform(8.0, 12.0)
    if redis:
        count = max(2, round(duration / 12))
        for number in range(count):
            kind = "redis-restart" if number % 2 == 0 else "redis-flush"
            plan.append(Planned((number + 0.5) * duration / count, kind))
        # After each of Redis' own faults, so that the junk stays for a while.
        for number in range(count):
            plan.append(Planned((number + rng.uniform(0.6, 0.9)) * duration / count, "garbage"))
    if postgres or mariadb:
        kind = "postgres-restart" if postgres else "mariadb-restart"
        plan.append(Planned(duration * rng.uniform(0.4, 0.6), kind))
    return sorted(plan, key=lambda p: p.at)


class Injector(threading.Thread):
    """Plays a fault plan; records each fault as it happens."""

    def __init__(
        self,
        plan: list[Planned],
        actions: dict[str, Callable[[], int | None]],
        *,
        fleet: Fleet,
        pause_seconds: float,
        rng: random.Random,
        executions: Path,
    ) -> None:
        super().__init__(name="chaos-injector", daemon=True)
        self.plan = plan
        self.actions = actions
        self.fleet = fleet
        self.pause_seconds = pause_seconds
        self.rng = rng
        self.executions = executions
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._pauses: list[threading.Thread] = []

    def run(self) -> None:
        began = time.monotonic()
        for planned in self.plan:
            time.sleep(max(0.0, began + planned.at - time.monotonic()))
            if planned.kind == "stop":
                pause = threading.Thread(target=self._pause, name="chaos-pause", daemon=True)
                pause.start()
                self._pauses.append(pause)
                continue
            start = time.time()
            try:
                pid = self.actions[planned.kind]()
            except Exception:
                logger.exception("chaos: could not inject %s", planned.kind)
                continue
            self.record(Fault(planned.kind, start, time.time(), pid))
        for pause in self._pauses:
            pause.join()

    def _pause(self) -> None:
        # Pause the worker that started a step last: it is most likely in one, which
        # is the case that matters (its step ends after its lease was taken over).
        pid = self.fleet.pause(self.rng, prefer=last_step_pid(self.executions))
        if pid is None:
            return
        start = time.time()
        time.sleep(self.pause_seconds)
        self.fleet.resume(pid)
        self.record(Fault("stop", start, time.time(), pid))

    def record(self, fault: Fault) -> None:
        """Add ``fault`` to the run's faults (the injector's, or one aimed elsewhere)."""
        with self._lock:
            self.faults.append(fault)
        logger.info("chaos: %s (pid %s) at %.3f", fault.kind, fault.pid, fault.start)


def last_step_pid(executions: Path) -> int | None:
    """The process that logged the latest step start, from the log's tail."""
    with executions.open("rb") as log:
        log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
        lines = log.read().splitlines()
    for line in reversed(lines[1:]):  # the first may be cut
        try:
            return int(json.loads(line)["pid"])
        except (ValueError, KeyError):
            continue
    return None


#: Junk items the "garbage" fault writes into each key.
GARBAGE_PER_KEY = 20


def junk(rng: random.Random) -> bytes:
    """Something that is not a task id as the Redis queue writes one (or a UUID of no task)."""
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice([b"not-a-uuid", b"", b"None", b"-1", b"1:2", b" "])
    if kind == 1:
        return rng.randbytes(rng.randint(1, 64))  # rarely UTF-8
    if kind == 2:
        return b"\xff\xfe" + rng.randbytes(8)  # never UTF-8
    if kind == 3:
        return str(uuid.UUID(int=rng.getrandbits(128))).encode()  # the id of no task
    if kind == 4:
        return str(uuid.UUID(int=rng.getrandbits(128))).upper().encode()
    if kind == 5:
        return b"x" * rng.randint(10_000, 200_000)
    return b"line\nWARNING a forged log line \x1b[31m"


def _score(rng: random.Random, now: float) -> float:
    """A delayed or in-flight score: long past, now-ish, in the run, or never."""
    return rng.choice(
        [-math.inf, 0.0, now - rng.uniform(0, 3600), now + rng.uniform(0, 30), math.inf]
    )


def push_garbage(client: Any, prefix: str, workflows: Sequence[str], rng: random.Random) -> int:
    """Write junk into every key of the Redis queue under ``prefix``; how many items.

    Band lists get it at their popping end; delayed sets get malformed members (and
    well-formed ones of no task) at random scores; bells get bytes that are not
    UTF-8; the in-flight set gets members old enough for the next sweep, or not.
    """
    now = time.time()

    def items() -> list[bytes]:
        return [junk(rng) for _ in range(GARBAGE_PER_KEY)]

    pipe = client.pipeline(transaction=False)
    written = 0
    for workflow in workflows:
        for band in range(3):
            lot = items()
            pipe.rpush(f"{prefix}queue:{workflow}:{band}", *lot)
            written += len(lot)
        nobody = uuid.UUID(int=rng.getrandbits(128))
        members = [*items(), f"{rng.randint(3, 9)}:{nobody}".encode(), f"1:{nobody}".encode()]
        members += [b"1:" + junk(rng), b"0:" + str(nobody).encode() + b"x"]
        pipe.zadd(f"{prefix}delayed:{workflow}", {m: _score(rng, now) for m in members})
        lot = items()
        pipe.lpush(f"{prefix}bell:{workflow}", *lot)
        written += len(members) + len(lot)
    lot = items()
    pipe.zadd(f"{prefix}inflight", {m: _score(rng, now) for m in lot})
    pipe.sadd(f"{prefix}entries", *items())
    pipe.execute()
    return written + 2 * len(lot)


def garbage(server: Any, rng: random.Random) -> None:
    """The "garbage" fault: junk into every key of the run's Redis queue (``server``: its
    :class:`~benchmarks.faults.servers.RedisServer`)."""
    import redis

    from salvador_django.conf import get_settings

    prefix = get_settings().KEY_PREFIX
    with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5) as client:
        written = push_garbage(client, prefix, ["chaos"], rng)
    logger.info("chaos: %d junk items written under %r", written, prefix)
