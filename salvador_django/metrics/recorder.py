"""Counters and histograms of a task's life, fed by :mod:`salvador_django.signals`.

Imported only when metrics are enabled: it imports ``prometheus_client``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from django.dispatch import Signal
from prometheus_client import CollectorRegistry, Counter, Histogram

from salvador_django import signals
from salvador_django.metrics.gauges import DatabaseGauges

#: Seconds, from a quick step to an hour-long one: the default buckets stop at 10 s.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip
#: Seconds from submit to first claim: a delayed task (``run_after``) waits long on purpose.
LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400,
)  # fmt: skip


class Metrics:
    """The metrics of one registry, and the receivers that feed them.

    ``Metrics(CollectorRegistry())`` is independent of every other instance (a test
    makes its own); :func:`salvador_django.metrics.enable` makes the process's one.
    The receivers are connected by :meth:`connect`, and only then.
    """

    def __init__(
        self, registry: CollectorRegistry, database: str | None = None, *, gauges: bool = True
    ) -> None:
        self.registry = registry
        self.submitted = Counter(
            "salvador_tasks_submitted",
            "Tasks created (submit(), a schedule's tick, a parent's child).",
            ["workflow"],
            registry=registry,
        )
        self.finished = Counter(
            "salvador_tasks_finished",
            "Tasks that ended, by status (completed, failed, cancelled).",
            ["workflow", "status"],
            registry=registry,
        )
        self.attempts = Counter(
            "salvador_step_attempts",
            "Step attempts that ended, by outcome (completed, failed, retrying, skipped, waiting).",
            ["workflow", "step", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "salvador_step_duration_seconds",
            "Seconds a step attempt ran (skipped steps, which run nothing, left out).",
            ["workflow", "step"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.start_latency = Histogram(
            "salvador_task_start_latency_seconds",
            "Seconds from a task's creation to its first claim by a worker.",
            ["workflow"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        #: Each (workflow, step, outcome)'s attempts and duration series, made once.
        self._step_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        #: The gauges read from the database (on ``registry`` too, unless ``gauges`` is false).
        self.gauges = DatabaseGauges(database)
        if gauges:
            registry.register(self.gauges)
        self._receivers: list[tuple[Signal, Any]] = [
            (signals.task_submitted, self.on_task_submitted),
            (signals.task_started, self.on_task_started),
            (signals.step_finished, self.on_step_finished),
            (signals.task_finished, self.on_task_finished),
        ]

    def connect(self) -> None:
        """Start counting: connect the receivers (strongly; :meth:`disconnect` ends it)."""
        for signal, receiver in self._receivers:
            signal.connect(receiver, weak=False, dispatch_uid=self._uid(receiver))

    def disconnect(self) -> None:
        """Stop counting; the values stay readable."""
        for signal, receiver in self._receivers:
            signal.disconnect(dispatch_uid=self._uid(receiver))

    def unregister(self) -> None:
        """Take every metric of this instance off its registry."""
        for collector in (
            self.submitted, self.finished, self.attempts, self.duration, self.start_latency,
            self.gauges,
        ):  # fmt: skip
            with contextlib.suppress(KeyError):  # the gauges, when left off
                self.registry.unregister(collector)

    def _uid(self, receiver: Any) -> str:
        return f"salvador-metrics-{id(self)}-{receiver.__name__}"

    def on_task_submitted(self, sender: Any, task: Any, **kwargs: Any) -> None:
        self.submitted.labels(task.workflow).inc()

    def on_task_started(self, sender: Any, task: Any, **kwargs: Any) -> None:
        created, started = task.created_at, task.started_at
        if isinstance(created, datetime) and isinstance(started, datetime):
            # Both on the database's clock; max() for a row a test or a fix wrote by hand.
            seconds = max(0.0, (started - created).total_seconds())
            self.start_latency.labels(task.workflow).observe(seconds)

    def on_step_finished(
        self, sender: Any, task: Any, step: str, outcome: str, duration: float, **kwargs: Any
    ) -> None:
        # Once per step attempt: the labelled children are kept (labels() takes a lock
        # and builds its key each call).
        key = (task.workflow, step, outcome)
        children = self._step_children.get(key)
        if children is None:  # a skipped step has no duration series
            timed = None if outcome == "skipped" else self.duration.labels(task.workflow, step)
            children = self._step_children[key] = (self.attempts.labels(*key), timed)
        children[0].inc()
        if children[1] is not None:
            children[1].observe(max(0.0, duration))

    def on_task_finished(self, sender: Any, task: Any, status: str, **kwargs: Any) -> None:
        self.finished.labels(task.workflow, status).inc()
