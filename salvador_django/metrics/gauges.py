"""A Prometheus collector of gauges read from the database, cached between scrapes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from django.db import DatabaseError, connections
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from salvador_django.conf import get_settings
from salvador_django.metrics.counts import FAILED_COUNT_CAP, Counts, read_counts

logger = logging.getLogger("salvador_django")

#: Seconds a reading serves: a storm of scrapes costs one set of queries.
CACHE_SECONDS = 15.0


class DatabaseGauges(Collector):
    """``salvador_tasks``, ``salvador_tasks_failed`` and ``salvador_oldest_due_task_age_seconds``.

    ``database`` is the alias holding tasks (default: ``SALVADOR["DATABASE"]`` when
    read). ``close_connection``: close this thread's connection after each reading,
    for a server that answers each scrape in a new thread (never in a Django view,
    whose connection the request owns).
    """

    def __init__(
        self,
        database: str | None = None,
        *,
        cache_seconds: float = CACHE_SECONDS,
        close_connection: bool = False,
    ) -> None:
        self.database = database
        self.cache_seconds = cache_seconds
        self.close_connection = close_connection
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._counts: Counts | None = None

    def describe(self) -> list[Metric]:
        # Names only: without this, registering the collector would query the database.
        return list(self._families(Counts()))

    def collect(self) -> Iterator[Metric]:
        counts = self.read()
        if counts is not None:
            yield from self._families(counts)

    def read(self) -> Counts | None:
        """The latest reading, taken again once it is ``cache_seconds`` old.

        ``None`` when the database could not be read (logged; the scrape goes on
        without these gauges rather than failing).
        """
        with self._lock:  # concurrent scrapes wait for the one reading
            if time.monotonic() - self._read_at < self.cache_seconds:
                return self._counts
            database = self.database or get_settings().DATABASE
            try:
                self._counts = read_counts(database)
            except DatabaseError as exc:
                logger.warning("salvador: metrics could not read the tasks table (%s)", exc)
                self._counts = None
            finally:
                if self.close_connection:
                    connections[database].close()
            self._read_at = time.monotonic()
            return self._counts

    def invalidate(self) -> None:
        """Forget the reading: the next scrape queries again."""
        with self._lock:
            self._read_at = -float("inf")

    def _families(self, counts: Counts) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            "salvador_tasks",
            "Unfinished tasks by workflow and status (pending, running, waiting, paused).",
            labels=["workflow", "status"],
        )
        for (workflow, status), n in sorted(counts.unfinished.items()):
            tasks.add_metric([workflow, status], n)
        failed = GaugeMetricFamily(
            "salvador_tasks_failed",
            f"Failed tasks by workflow, counted among the {FAILED_COUNT_CAP} most recent "
            "failures: exact below that many in all, a lower bound beyond.",
            labels=["workflow"],
        )
        for workflow, n in sorted(counts.failed.items()):
            failed.add_metric([workflow], n)
        oldest = GaugeMetricFamily(
            "salvador_oldest_due_task_age_seconds",
            "Seconds since the oldest due pending task became due, by workflow (0: none due).",
            labels=["workflow"],
        )
        for workflow, seconds in sorted(counts.oldest_due_age.items()):
            oldest.add_metric([workflow], seconds)
        yield from (tasks, failed, oldest)
