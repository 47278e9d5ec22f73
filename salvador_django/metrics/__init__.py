"""Prometheus metrics, through the ``[prometheus]`` extra (``prometheus_client``).

Off unless enabled, and then free: nothing is connected to the signals and
``prometheus_client`` is not imported. Two ways to turn them on:

- ``SALVADOR["METRICS"] = True``: every process of the project (the web app, each
  worker) counts from its start (:meth:`~salvador_django.apps.SalvadorConfig.ready`
  calls :func:`enable`), and the ``metrics/`` view of ``salvador_django.urls`` serves
  them with the gauges read from the database.
- ``runworkflows --metrics-port N``: that worker counts, whatever the setting, and
  serves ``/metrics`` on port ``N`` (a process pool serves the sum of its children).

The counters and histograms are fed by the receivers of :mod:`salvador_django.signals`
(:mod:`.recorder`); the gauges are read from the tasks table, cached (:mod:`.gauges`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from salvador_django.metrics.recorder import Metrics

__all__ = ["active", "disable", "enable", "enable_if_configured"]

_lock = threading.Lock()
_active: Metrics | None = None


def enable(registry: CollectorRegistry | None = None, database: str | None = None) -> Metrics:
    """Count from now on, into ``registry`` (default: prometheus_client's global one).

    Idempotent: the process has one set of metrics; a second call returns it. Raises
    :class:`~salvador_django.exceptions.ConfigurationError` if ``prometheus_client``
    is not installed.
    """
    global _active
    with _lock:
        if _active is not None:
            return _active
        try:
            import prometheus_client
        except ImportError as exc:
            raise ConfigurationError(
                "Metrics need prometheus_client: pip install 'salvador-django[prometheus]'."
            ) from exc
        from salvador_django.metrics.recorder import Metrics

        metrics = Metrics(registry or prometheus_client.REGISTRY, database)
        metrics.connect()
        _active = metrics
        return metrics


def disable() -> None:
    """Stop counting and take the metrics off their registry (a test's teardown)."""
    global _active
    with _lock:
        if _active is None:
            return
        _active.disconnect()
        _active.unregister()
        _active = None


def active() -> Metrics | None:
    """This process's metrics, or ``None`` while they are off."""
    return _active


def enable_if_configured() -> None:
    """:func:`enable` if ``SALVADOR["METRICS"]`` is true (invalid settings: left to the
    checks framework, which reports them)."""
    try:
        wanted = get_settings().METRICS
    except ConfigurationError:
        return
    if wanted:
        enable()
