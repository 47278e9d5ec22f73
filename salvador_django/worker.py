"""The worker: threads that claim and run tasks, plus heartbeat, reaper and sweep.

The worker composes a queue and the engine; it does not know how either works.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback

from django.db import close_old_connections, connections

from salvador_django.backoff import backoff_delay, close_connections, log_error
from salvador_django.conf import get_settings
from salvador_django.engine import Engine, Outcome
from salvador_django.engine.text import loggable, loggable_traceback
from salvador_django.leases import (
    Lease,
    Leases,
    new_token,
    reap_expired_leases,
    renew_leases,
    worker_name,
)
from salvador_django.models import Task
from salvador_django.preflight import warn_of_unregistered_workflows
from salvador_django.presence import Presence, forget_gone
from salvador_django.queues import Entry, Queue, announce, get_queue
from salvador_django.rollup import roll_up_quietly
from salvador_django.scheduling import tick_due
from salvador_django.timers import TimerThread, fire_due_timers
from salvador_django.worker_options import WorkerOptions

__all__ = ["TIMEOUT_GRACE_SECONDS", "Worker", "WorkerOptions"]

logger = logging.getLogger("salvador_django")

#: How long past its deadline a step may run before the watchdog abandons it (the
#: engine itself fails an attempt that returns late; this is for those that never do).
TIMEOUT_GRACE_SECONDS = 1.0


class Worker:
    """Runs tasks of the given workflows until stopped (or, in burst mode, until idle)."""

    def __init__(self, options: WorkerOptions, queue: Queue | None = None) -> None:
        settings = get_settings()
        self.options = options
        self.database = settings.DATABASE
        self.queue = queue or get_queue()
        self.name = worker_name()
        parallelism = options.parallel_steps or options.concurrency
        self.engine = Engine(database=self.database, worker_name=self.name, parallelism=parallelism)
        self.presence = Presence(
            self.database, self.name, kind=options.kind, queue=self.queue.label(),
            concurrency=options.concurrency, workflows=options.workflows,
        )  # fmt: skip
        self.leases = Leases()
        self._stopping = threading.Event()
        self._runners: list[threading.Thread] = []  # the live slots (abandoned ones leave)
        self._abandoned: set[str] = set()  # names of runner threads left to a hung step
        self._runners_lock = threading.Lock()
        self._maintenance: threading.Thread | None = None
        self._timers: TimerThread | None = None
        #: Why a burst gave up before it was done (the database or queue stayed down).
        self.gave_up: str | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def connections_needed(self) -> tuple[int, str]:
        """The database connections this worker may hold at once, and what they are."""
        listener = self.queue.connections_held()
        timers = 0 if self.options.burst else 1  # a burst runs no timer thread
        how = f"{self.options.concurrency} thread(s), 1 for maintenance"
        if timers:
            how += ", 1 for timers"
        if listener:
            how += f", {listener} for the queue"
        return self.options.concurrency + 1 + timers + listener, how

    def stop(self) -> None:
        """Stop claiming; running steps finish and unfinished tasks are released."""
        if not self._stopping.is_set():
            logger.info("salvador: worker %s stopping", self.name)
        self._stopping.set()
        if self._timers is not None:
            self._timers.nudge()
        self.queue.wake()

    def run(self) -> bool:
        """Run until stopped or, in burst mode, idle. True when every runner ended in time."""
        logger.info(
            "salvador: worker %s started (%d thread(s); queue: %s; database: %s; workflows: %s)",
            self.name,
            self.options.concurrency,
            self.queue.label(),
            self.database,
            ", ".join(self.options.workflows) or "none",
        )
        if self.options.burst:  # tasks whose lease expired become due before the runners look
            sweep = threading.Thread(target=self._sweep_before_burst, name="salvador-sweep")
            sweep.start()
            sweep.join()
        self._maintenance = threading.Thread(
            target=self._maintain, name="salvador-maintenance", daemon=True
        )
        self._maintenance.start()
        if not self.options.burst:  # a burst fires the timers already due, in its sweep
            self._timers = TimerThread(
                self.database, self.queue, self.options.poll_interval, self._stopping
            )
            self._timers.start()
        for number in range(self.options.concurrency):
            self._start_runner(f"salvador-{number}")
        try:
            # A burst ends when its runners do: look often, so its exit does not lag.
            check_every = 0.02 if self.options.burst else 0.2
            while self._any_runner_alive() and not self._stopping.wait(check_every):
                pass
        finally:
            self.stop()
        deadline = time.monotonic() + self.options.grace_period
        finished = self._join(deadline)
        # It renews the leases of steps still running: no longer than the grace period.
        self._maintenance.join(timeout=max(0.0, deadline - time.monotonic()) + 0.1)
        if self._timers is not None:
            self._timers.join(timeout=max(0.0, deadline - time.monotonic()) + 0.1)
        if finished:
            self.engine.close()
        logger.info("salvador: worker %s stopped", self.name)
        return finished

    def _sweep_before_burst(self) -> None:
        """One sweep, in a thread of its own: the caller's connections are not touched."""
        try:
            self.recover()
        except Exception as exc:
            log_error(exc, "sweep failed (%s); running what is due anyway")
        finally:
            connections.close_all()

    def _join(self, deadline: float) -> bool:
        with self._runners_lock:
            runners = list(self._runners)
        for runner in runners:
            runner.join(timeout=max(0.0, deadline - time.monotonic()))
        stuck = [r.name for r in runners if r.is_alive()]
        if stuck:
            logger.warning(
                "salvador: %d thread(s) still running a step after the %gs grace period; "
                "the worker stops without them: unless a step finishes first, its lease "
                "expires and it runs again",
                len(stuck),
                self.options.grace_period,
            )
        return not stuck

    def _start_runner(self, name: str) -> None:
        runner = threading.Thread(target=self._run_tasks, args=(name,), name=name, daemon=True)
        runner.start()  # before it is listed: a listed runner is always joinable
        with self._runners_lock:
            self._runners.append(runner)

    def _any_runner_alive(self) -> bool:
        with self._runners_lock:
            return any(r.is_alive() for r in self._runners)

    def _run_tasks(self, name: str) -> None:
        token_prefix = f"{self.name}:{name.removeprefix('salvador-')}"
        timeout = 0.0 if self.options.burst else self.options.poll_interval
        failing_since: float | None = None  # when the claims began to fail, if they do
        errors = 0
        while not self._stopping.is_set():
            try:
                token = new_token(token_prefix)
                popped_at = time.monotonic()  # a lease taken by this pop runs from later
                tasks = self.queue.claim(
                    self.options.workflows,
                    timeout,
                    token=token,
                    lease_seconds=self.options.lease_seconds,
                )
                failing_since, errors = None, 0
            except Exception as exc:  # no error ends a runner: it backs off and goes on
                failing_since = failing_since or time.monotonic()
                if self._gives_up(failing_since, exc):
                    break
                delay = backoff_delay(errors)
                errors += 1
                log_error(exc, "cannot take tasks (%s); retrying in %ss", delay)
                close_connections()
                self._stopping.wait(delay)
                continue
            if not tasks:
                if self.options.burst:
                    break
                close_old_connections()  # an idle thread keeps to CONN_MAX_AGE too
                continue
            for task in tasks:
                self._run_one(task, token, popped_at)
            if threading.current_thread().name in self._abandoned:
                break  # a replacement took this slot while the step hung
        connections.close_all()

    def _gives_up(self, failing_since: float, exc: Exception) -> bool:
        """In burst mode, whether claims failed for too long: then the worker stops."""
        if not self.options.burst:
            return False
        failing_for = time.monotonic() - failing_since
        if failing_for < self.options.give_up_after:
            return False
        with self._runners_lock:
            first = self.gave_up is None
            if first:
                self.gave_up = (
                    f"cannot take tasks for {failing_for:.0f}s "
                    f"(--give-up-after {self.options.give_up_after:g}): {loggable(str(exc))}"
                )
        if first:
            logger.error("salvador: giving up: %s", self.gave_up)
        self.stop()
        return True

    def _run_one(self, task: Task, token: str, claimed_at: float) -> None:
        lease = Lease(task.id, token, self.options.lease_seconds, renewed_at=claimed_at, task=task)
        self.leases.add(lease)
        logger.info(
            "salvador: task %s (%s) claimed at step %r", task.id, task.workflow, task.step_name
        )
        try:
            outcome = self.engine.run(task, lease, should_stop=self._stopping.is_set)
            if outcome in (Outcome.RELEASED, Outcome.RETRY):
                announce([Entry.of(task, scheduled=outcome == Outcome.RETRY)], self.queue)
            elif outcome == Outcome.WAITING and task.wake_at is not None and self._timers:
                self._timers.nudge()  # it may be the soonest timer
        except BaseException as exc:
            # The database failed under the engine (or a step raised SystemExit): the
            # lease expires and the task is reaped; this thread carries on.
            logger.error(
                "salvador: task %s (%s) interrupted: %s",
                task.id,
                task.workflow,
                loggable_traceback(exc),
            )
            close_connections()
        finally:
            self.leases.remove(lease)
            close_old_connections()

    def _maintain(self) -> None:
        """Heartbeat every third of a lease; reap and sweep every sweep interval.

        Runs until the runners have finished, so leases stay alive while the last
        steps of a graceful shutdown complete.
        """
        self.presence.register()
        if self.options.warn_of_unregistered:
            try:
                warn_of_unregistered_workflows(self.database)
            except Exception as exc:
                log_error(exc, "cannot look for tasks of unregistered workflows (%s)")
        heartbeat_every = self.options.lease_seconds / 3
        last_heartbeat = time.monotonic()
        next_sweep = time.monotonic() + (self.options.sweep_interval if self.options.burst else 0)
        while not (self._stopping.is_set() and not self._any_runner_alive()):
            now = time.monotonic()
            try:
                if self.options.abandon_hung_steps:
                    self._time_out_hung_steps()
                worked = False
                if now - last_heartbeat >= heartbeat_every:
                    self.heartbeat()
                    last_heartbeat, worked = now, True
                if self.queue.came_back():
                    next_sweep = now  # what was submitted while the queue was down
                if now >= next_sweep and not self._stopping.is_set():
                    next_sweep = now + self.options.sweep_interval
                    self.recover()
                    worked = True
                if worked:
                    close_old_connections()
            except Exception as exc:  # no error ends maintenance: it backs off and goes on
                log_error(exc, "maintenance failed (%s); will try again")
                close_connections()
                for lease in self.leases.snapshot():
                    if lease.overdue():  # expired by now: stop working on that task
                        lease.lost.set()
                time.sleep(1)
            if self._stopping.is_set():
                time.sleep(0.01)  # the runners are finishing: notice the last one soon
            else:
                wait = min(last_heartbeat + heartbeat_every, next_sweep) - time.monotonic()
                self._stopping.wait(min(0.2, max(0.01, wait)))
        self.presence.leave()
        connections.close_all()

    def _time_out_hung_steps(self) -> None:
        """Fail attempts past their step's timeout; give their slots to new threads.

        A thread cannot be killed, so the hung one is abandoned: its lease is fenced
        off (whatever it writes later is refused), it exits if its step ever returns,
        and a new runner thread takes its slot, so no slot stays blocked.
        """
        now = time.monotonic()
        for lease in self.leases.snapshot():
            attempt = lease.attempt
            if attempt is None or attempt.deadline is None:
                continue
            if now < attempt.deadline + TIMEOUT_GRACE_SECONDS:
                continue
            runner = self._runner_of(lease)
            stack = _stack_of(runner)
            outcome = self.engine.time_out(lease, attempt, stack)
            if outcome == Outcome.LOST:
                continue  # the step returned (or the lease expired) first: nothing hung
            logger.error(
                "salvador: task %s (%s) step %r hung past its timeout of %ss; "
                "its thread %s is abandoned and replaced",
                attempt.task.id,
                attempt.task.workflow,
                attempt.step.name,
                attempt.step.timeout,
                runner.name if runner else "?",
            )
            if outcome == Outcome.RETRY:
                announce([Entry.of(attempt.task, scheduled=True)], self.queue)
            self.leases.remove(lease)
            if runner is not None:
                if not self._stopping.is_set():  # the new runner first: a slot is never empty
                    self._start_runner(f"{runner.name}.{len(self._abandoned) + 1}")
                with self._runners_lock:
                    self._abandoned.add(runner.name)
                    self._runners.remove(runner)

    def _runner_of(self, lease: Lease) -> threading.Thread | None:
        with self._runners_lock:
            for runner in self._runners:
                if lease.token.startswith(f"{self.name}:{runner.name.removeprefix('salvador-')}:"):
                    return runner
        return None

    def heartbeat(self) -> None:
        """Extend the leases of in-flight tasks; mark those this worker no longer holds."""
        leases = self.leases.snapshot()
        started = time.monotonic()
        held = [lease for lease in leases if lease.seconds is not None and not lease.lost.is_set()]
        since = max((started - lease.renewed_at for lease in held), default=0.0)
        renew_leases(self.database, leases)
        warn_of_late_renewal(held, since, time.monotonic() - started)
        self.presence.beat(leases)

    def recover(self) -> None:
        """The sweep: reap expired leases (and poison tasks), then re-announce lost entries.
        A burst fires due timers and ticks due schedules here too (it has no timer thread).
        """
        reap_expired_leases(self.database, self.options.max_recoveries, self.queue)
        forget_gone(self.database)
        if self.options.burst:
            woken = fire_due_timers(self.database)
            if woken:
                announce([Entry.of(task) for task in woken], self.queue)
            tick_due(self.database)
        swept = self.queue.reannounce(self.options.workflows)
        if swept:
            logger.info("salvador: sweep re-announced %d task(s)", swept)
        roll_up_quietly(self.database)  # the admin's charts: hourly, at most every 5 min


def warn_of_late_renewal(leases: list[Lease], since: float, took: float) -> None:
    """Log a renewal that came past two thirds of a lease (``since`` the last one, the
    write taking ``took`` seconds), and the leases it found expired: a busy database
    (SQLite's write lock) or a starved process; a longer ``LEASE_SECONDS`` absorbs it."""
    if not leases or since + took <= min(lease.seconds or 0 for lease in leases) * 2 / 3:
        return
    lost = sum(lease.lost.is_set() for lease in leases)
    logger.warning(
        "salvador: leases renewed %.1fs after the last renewal (the write took %.1fs; "
        "lease %gs); %d of %d lost",
        since + took,
        took,
        leases[0].seconds,
        lost,
        len(leases),
    )


def _stack_of(thread: threading.Thread | None) -> str:
    """Where ``thread`` is now, as a formatted stack ("" if unknown)."""
    frame = sys._current_frames().get(thread.ident) if thread and thread.ident else None
    return "".join(traceback.format_stack(frame)) if frame else ""
