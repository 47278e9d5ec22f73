"""``manage.py runworkflows``: run a worker in this process."""

from __future__ import annotations

import argparse
import errno
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from salvador_django import schema
from salvador_django.apps import task_backends_configured
from salvador_django.checks import check_queue
from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError
from salvador_django.pool import ProcessPool
from salvador_django.preflight import warn_if_connections_short
from salvador_django.queues import get_queue
from salvador_django.registry import registry
from salvador_django.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from salvador_django.metrics.exporter import Exporter

logger = logging.getLogger("salvador_django")


# The largest values the options take: beyond them, a typo (and past some, a crash).
MAX_CONCURRENCY = 1000
MAX_POLL_INTERVAL = 3600  # an hour
MAX_GRACE_PERIOD = 86400  # a day
MAX_PORT = 65535


def _number(
    kind: type[float] | type[int], minimum: float, maximum: float, what: str
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {what}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {text}")
        if value > maximum:  # infinity too
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {text}")
        if math.isnan(value):  # neither below nor above
            raise argparse.ArgumentTypeError(f"must be from {minimum} to {maximum}, not {text}")
        return value

    return parse


class Command(BaseCommand):
    help = "Run workflow tasks until stopped (SIGINT/SIGTERM drain), or until idle with --burst."

    def get_check_kwargs(self, options: Any) -> dict[str | None, Any]:
        # Django 6.1 runs the system checks against every database unless told
        # which; on SQLite that opens a connection. A worker must start while its
        # database is down (it waits, or gives up with --give-up-after), so its
        # checks stay static, as they were before 6.1.
        return {**super().get_check_kwargs(options), "databases": []}

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workflow",
            action="append",
            dest="workflows",
            metavar="NAME",
            help="Run only this workflow (repeatable; default: every registered workflow).",
        )
        parser.add_argument(
            "--queue-name",
            action="append",
            dest="queue_names",
            metavar="NAME",
            help="Run the Django tasks of this queue (repeatable; default: every queue, "
            "and every workflow). Without --workflow, only those queues.",
        )
        parser.add_argument(
            "--concurrency",
            type=_number(int, 1, MAX_CONCURRENCY, "thread count"),
            help=f"Worker threads, at most {MAX_CONCURRENCY} (default: SALVADOR['CONCURRENCY']).",
        )
        parser.add_argument(
            "--poll-interval",
            type=_number(float, 0.001, MAX_POLL_INTERVAL, "number of seconds"),
            help="Seconds an idle thread waits before looking again, at most "
            f"{MAX_POLL_INTERVAL} (default: SALVADOR['POLL_INTERVAL']).",
        )
        parser.add_argument("--burst", action="store_true", help="Run what is due, then exit.")
        parser.add_argument(
            "--pool",
            choices=["threads", "processes"],
            default="threads",
            help="threads (default): worker threads in this process; a step that hangs past "
            "its timeout is abandoned and its thread replaced. processes: one child process "
            "per slot, killed and replaced when its step hangs past its timeout.",
        )
        parser.add_argument(
            "--queue", help="Queue to take tasks from: 'database', 'redis' or a dotted path."
        )
        parser.add_argument(
            "--grace-period",
            type=_number(float, 0, MAX_GRACE_PERIOD, "number of seconds"),
            default=30.0,
            help="On shutdown, seconds to let running steps finish, at most "
            f"{MAX_GRACE_PERIOD} (default: 30).",
        )

        parser.add_argument(
            "--give-up-after",
            type=_number(float, 0, MAX_GRACE_PERIOD, "number of seconds"),
            default=60.0,
            help="With --burst: seconds the database or the queue may stay unreachable "
            "before the worker gives up and exits with status 1 (default: 60).",
        )
        parser.add_argument(
            "--metrics-port",
            type=_number(int, 1, MAX_PORT, "port number"),
            metavar="PORT",
            help="Serve Prometheus metrics at /metrics on this port, on every interface "
            "(needs salvador-django[prometheus]); a process pool serves its children's sum.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workflows = options["workflows"]
        if options["queue_names"]:
            workflows = [*(workflows or []), *_queue_workflows(options["queue_names"])]
        unknown = [name for name in workflows or [] if name not in registry]
        if unknown:
            known = ", ".join(registry.names()) or "none"
            raise CommandError(f"Unknown workflow(s): {', '.join(unknown)} (registered: {known}).")
        if not (workflows or registry.names()):
            raise CommandError(
                "No workflow is registered: define workflows in an app's workflows.py."
            )
        try:
            settings = get_settings()
            problems = [
                message
                for message in check_queue(options["queue"] or settings.QUEUE, settings.DATABASE)
                if message.is_serious()
            ]
            if problems:
                raise CommandError(" ".join(str(message.msg) for message in problems))
            queue = get_queue(options["queue"])
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        _check_tables(settings.DATABASE)
        worker_options = WorkerOptions.from_settings(
            workflows=workflows,
            concurrency=options["concurrency"],
            poll_interval=options["poll_interval"],
            burst=options["burst"],
            grace_period=options["grace_period"],
            give_up_after=options["give_up_after"],
        )
        _ensure_log_output(options["verbosity"])
        pool = options["pool"] == "processes"
        exporter = (
            _serve_metrics(options["metrics_port"], pool) if options["metrics_port"] else None
        )
        worker: Worker | ProcessPool
        try:
            if pool:
                worker = ProcessPool(worker_options, queue_name=options["queue"])
                worker.on_child_exit = exporter.process_dead if exporter else None
            else:
                worker = Worker(worker_options, queue=queue)
            warn_if_connections_short(settings.DATABASE, *worker.connections_needed())
            self._install_signal_handlers(worker)
            worker.run()
        finally:
            queue.close()
            if exporter is not None:
                exporter.close()
        if worker.gave_up:
            raise CommandError(f"Gave up: {worker.gave_up}")

    def _install_signal_handlers(self, worker: Worker | ProcessPool) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            if worker.stopping:
                logger.warning("salvador: second signal; exiting without waiting for running steps")
                sys.exit(1)
            logger.info(
                "salvador: received %s; finishing running steps", signal.Signals(signum).name
            )
            worker.stop()

        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread (e.g. call_command in a test)
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)


def _queue_workflows(queue_names: list[str]) -> list[str]:
    """The workflows of the Django task queues ``queue_names``."""
    if not task_backends_configured():
        raise CommandError(
            "--queue-name: no TASKS backend is salvador_django.tasks.SalvadorBackend."
        )
    from salvador_django.tasks.backend import queue_workflows

    try:
        return queue_workflows(queue_names)
    except LookupError as exc:
        raise CommandError(
            f"--queue-name: no task backend has a queue named {exc.args[0]!r}."
        ) from exc


def _check_tables(database: str) -> None:
    """Refuse to start on a database without the salvador tables (or with old ones).

    An unreachable database is no reason not to start: the worker waits for it.
    """
    try:
        problem = schema.problem(database)
    except DatabaseError as exc:
        logger.warning("salvador: cannot check the salvador tables yet (%s)", exc)
        return
    finally:
        connections[database].close()  # the worker's threads open their own
    if problem:
        raise CommandError(problem)


def _serve_metrics(port: int, multiprocess: bool) -> Exporter:
    """Start serving ``/metrics`` before any worker runs: a port in use stops the start."""
    try:
        from salvador_django.metrics.exporter import Exporter
    except ImportError as exc:
        raise CommandError(
            "--metrics-port needs prometheus_client: pip install 'salvador-django[prometheus]'."
        ) from exc
    try:
        return Exporter(port, multiprocess=multiprocess)
    except OSError as exc:
        reason = "it is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise CommandError(f"Cannot serve metrics on port {port}: {reason}.") from exc


def _ensure_log_output(verbosity: int) -> None:
    """Show the worker's log lines on stderr unless LOGGING already routes them somewhere."""
    if logger.hasHandlers():
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
