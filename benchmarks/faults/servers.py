"""Private PostgreSQL and Redis servers, for runs that stop, restart or flush them.

Each runs on a free loopback port in a directory of its own, so the machine's shared
services stay up while a fault-injection run or a test takes these down.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on port {port}") from None
            time.sleep(0.05)


class RedisServer:
    """``redis-server`` on a free loopback port, keeping nothing on disk.

    By default it runs in a process group of its own, which ``stop`` kills whole; with
    ``own_process_group=False`` it stays in its starter's group and dies with it (a
    fault-injection run killed by a test takes its server along).
    """

    def __init__(self, directory: Path, *, own_process_group: bool = True) -> None:
        self.directory = directory
        self.port = free_port()
        self.own_process_group = own_process_group
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=self.own_process_group,
        )  # fmt: skip
        wait_for_port(self.port, "redis-server", timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.own_process_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        elif self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Kill the server and start a new one on the same port: every key is lost."""
        self.stop()
        self.start()

    def flushall(self) -> None:
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5) as client:
            client.flushall()


#: ``runuser`` is in ``/usr/sbin``, which is not on every user's ``PATH`` (nor on a
#: virtualenv's or tox's): looked up there first.
RUNUSER = "/usr/sbin/runuser"


def runuser_binary() -> str | None:
    """The ``runuser`` command (util-linux; only root may use it), if installed."""
    if os.access(RUNUSER, os.X_OK):
        return RUNUSER
    return shutil.which("runuser")


def postgres_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb``, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A PostgreSQL cluster of its own (``initdb``, ``pg_ctl``) on a free port.

    Trust authentication for the user ``postgres``, TCP on 127.0.0.1 only. When run
    as root, the server runs as the ``postgres`` system user (``initdb`` refuses root)
    through ``runuser``. ``pg_ctl`` detaches the server into a session of its own:
    ``destroy`` is what stops it.
    """

    def __init__(self) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.binaries = binaries
        self._as_postgres = os.geteuid() == 0
        self._runuser = runuser_binary() if self._as_postgres else None
        if self._as_postgres and self._runuser is None:
            raise RuntimeError(
                f"running as root, PostgreSQL needs runuser ({RUNUSER}) to run as postgres"
            )
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="salvador-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"

    def _run(self, *args: str) -> None:
        command = [str(self.binaries / args[0]), *args[1:]]
        if self._runuser is not None:
            command = [self._runuser, "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        if not self.data.exists():
            if self._as_postgres:
                shutil.chown(self.directory, "postgres", "postgres")
                self.directory.chmod(0o700)
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--no-sync", "--no-instructions")  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``immediate`` is a crash: no checkpoint, recovery at start."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def create_database(self, name: str) -> None:
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def destroy(self, keep_log: Path | None = None) -> None:
        """Stop the server and remove its files (its log copied to ``keep_log`` first)."""
        try:
            self.stop("immediate")
        finally:
            _remove(self.directory, self.log, keep_log)


class MariaDBServer:
    """A MariaDB server of its own (``mariadb-install-db``, ``mariadbd``) on a free port.

    ``root`` with no password, TCP on 127.0.0.1 only, utf8mb4. When run as root, the
    server runs as the ``mysql`` system user (``--user``). It runs in a process group of
    its own: ``stop`` kills it (``SIGKILL``, a crash: InnoDB recovers at the next
    start) or shuts it down (``SIGTERM``); ``destroy`` stops it and removes its files.
    """

    def __init__(self) -> None:
        self.server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.install = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
        if not (os.access(self.server, os.X_OK) and os.access(self.install, os.X_OK)):
            raise RuntimeError("no MariaDB server (mariadbd, mariadb-install-db) installed")
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="salvador-mariadb-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._user = ["--user=mysql"] if os.geteuid() == 0 else []

    def start(self) -> None:
        if not self.data.exists():
            if self._user:
                shutil.chown(self.directory, "mysql", "mysql")
            subprocess.run(
                [self.install, "--no-defaults", f"--datadir={self.data}", *self._user,
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
        self.process = subprocess.Popen(
            [self.server, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.directory / 'mysqld.sock'}",
             f"--pid-file={self.directory / 'mysqld.pid'}", f"--log-error={self.log}",
             "--skip-name-resolve", "--character-set-server=utf8mb4",
             "--innodb-buffer-pool-size=128M", "--max-connections=300",
             # Every deadlock in the error log: the run's duplicates name their cause.
             "--innodb-print-all-deadlocks=ON", *self._user],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_for_port(self.port, "mariadbd", timeout=60)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``immediate`` is a crash (``SIGKILL``), recovered at start."""
        if self.process is None:
            return
        sig = signal.SIGKILL if mode == "immediate" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=60)
        self.process = None

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def create_database(self, name: str) -> None:
        import MySQLdb

        connection = MySQLdb.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            connection.cursor().execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
        finally:
            connection.close()

    def destroy(self, keep_log: Path | None = None) -> None:
        """Stop the server and remove its files (its log copied to ``keep_log`` first)."""
        try:
            self.stop("immediate")
        finally:
            _remove(self.directory, self.log, keep_log)


def _remove(directory: Path, log: Path, keep_log: Path | None) -> None:
    if keep_log is not None and log.exists():
        shutil.copyfile(log, keep_log)
    shutil.rmtree(directory, ignore_errors=True)
