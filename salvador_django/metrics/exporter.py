"""``runworkflows --metrics-port``: ``/metrics`` served by prometheus_client's HTTP server.

A process pool (``--pool processes``) runs its steps in forked children, each with
metrics of its own. prometheus_client's multiprocess mode adds them up: the
supervisor makes a private directory and names it in ``PROMETHEUS_MULTIPROC_DIR``
before any metric exists, so that every value (the children inherit the metrics
at fork) lives in a file of its process there; the supervisor serves their sum
(``MultiProcessCollector``) and removes the directory when it exits.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from salvador_django import metrics

logger = logging.getLogger("salvador_django")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Exporter:
    """Serves this process's metrics (or, with ``multiprocess``, its children's too)."""

    def __init__(self, port: int, *, multiprocess: bool = False, address: str = "0.0.0.0") -> None:  # noqa: S104 - a scraper runs on another host
        self.port = port
        self.address = address
        self.directory: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._enabled_here = multiprocess or metrics.active() is None
        if multiprocess:
            self._use_directory()
        registry = self._registry()
        try:
            self._server, self._thread = start_http_server(port, address, registry=registry)
        except OSError:
            self.close()
            raise
        logger.info(
            "salvador: serving metrics on port %d at /metrics%s",
            port,
            f" (the pool's processes count in {self.directory})" if self.directory else "",
        )

    def _use_directory(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="salvador-metrics-")
        os.environ[MULTIPROC_ENV] = self.directory
        # Metrics made before this point (SALVADOR["METRICS"] enabled them at start)
        # keep their values in memory, out of the sum: make them again, in files.
        metrics.disable()
        values.ValueClass = values.get_value_class()

    def _registry(self) -> CollectorRegistry:
        recorded = metrics.enable()
        # Each scrape is answered in a new thread: its connection must not outlive it.
        recorded.gauges.close_connection = True
        if self.directory is None:
            return recorded.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)
        registry.register(recorded.gauges)
        return registry

    def process_dead(self, pid: int) -> None:
        """Bookkeeping of a child that exited (its counts stay in the sum)."""
        if self.directory is not None:
            mark_process_dead(pid, self.directory)

    def close(self) -> None:
        """Stop serving, stop counting, and remove the directory of a pool's values."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # shutdown() alone keeps the port
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._enabled_here:
            metrics.disable()
        if self.directory is not None:
            if os.environ.get(MULTIPROC_ENV) == self.directory:
                del os.environ[MULTIPROC_ENV]
            values.ValueClass = values.get_value_class()
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
