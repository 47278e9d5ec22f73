"""``metrics/`` of ``salvador_django.urls``: this process's metrics for a scraper.

Served only while ``SALVADOR["METRICS"]`` is true (404 otherwise), and open to
anyone who reaches it: route it to your Prometheus only (a network rule, a reverse
proxy), or include it in a URLconf of your own behind the protection you need.
It shows the gauges read from the database (cached for 15 s) and the counters of
this process (``submit()`` calls made here). Under a server of several processes
(gunicorn) that sets ``PROMETHEUS_MULTIPROC_DIR``, it serves the sum of all of them.
"""

from __future__ import annotations

import os

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from salvador_django import metrics


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in the Prometheus text format (OpenMetrics if the scraper asks)."""
    recorded = metrics.active()
    if recorded is None:
        raise Http404("Metrics are off: SALVADOR['METRICS'] is not true.")
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = recorded.registry
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        registry.register(recorded.gauges)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)
