"""A benchmark worker with every observability feature on (the observability section).

``benchmarks.settings`` calls :func:`configure` when ``SALVADOR_BENCH_OBSERVE=1``
(and then sets ``SALVADOR["METRICS"] = True``): the process gets an OpenTelemetry SDK
``TracerProvider`` whose ``BatchSpanProcessor`` exports to an ``InMemorySpanExporter``,
as an application would configure one (with an OTLP exporter instead). At exit it
writes what it recorded to the file named by ``SALVADOR_BENCH_OBSERVE_REPORT``: the
spans exported and the step attempts the Prometheus counter saw, so the run can show
that everything was on. ``SALVADOR_BENCH_OBSERVE=tracing`` (or ``metrics``) turns on one
of the two only: to tell their costs apart.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Sequence
from pathlib import Path

OBSERVE = "SALVADOR_BENCH_OBSERVE"
#: By hand, to see what the export costs: ``count`` (spans counted, none kept) or ``none``
#: (an SDK without a span processor); the report then says nothing of the spans.
EXPORTER = "SALVADOR_BENCH_OBSERVE_EXPORTER"
REPORT = "SALVADOR_BENCH_OBSERVE_REPORT"


def wanted(part: str) -> bool:
    """Whether this process is to run with ``part`` (``tracing``, ``metrics``) on."""
    return os.environ.get(OBSERVE) in ("1", part)


def configure() -> None:
    """Set the process's OpenTelemetry SDK; write the report at exit."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class Counting(InMemorySpanExporter):
        """Counts the spans and keeps none, as an exporter that sends them away."""

        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.count += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    exporter = InMemorySpanExporter() if os.environ.get(EXPORTER) != "count" else Counting()
    if os.environ.get(EXPORTER) != "none":
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    path = os.environ.get(REPORT)
    if path:
        # Registered after the provider's own exit handler: runs before it shuts down.
        atexit.register(_report, provider, exporter, Path(path))


def _report(provider: object, exporter: object, path: Path) -> None:
    provider.force_flush()  # type: ignore[attr-defined]
    spans = exporter.get_finished_spans()  # type: ignore[attr-defined]
    outcomes: dict[str, int] = {}
    for span in spans:
        outcome = str(span.attributes.get("salvador.outcome", "-"))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    path.write_text(json.dumps({"spans": len(spans), "span_outcomes": outcomes,
                                "attempts_counted": _attempts_counted()}))  # fmt: skip


def _attempts_counted() -> float | None:
    """The step attempts this process's Prometheus counter saw (None: metrics off)."""
    from salvador_django import metrics

    active = metrics.active()
    if active is None:
        return None
    return sum(
        sample.value
        for family in active.registry.collect()
        if family.name == "salvador_step_attempts"
        for sample in family.samples
        if sample.name.endswith("_total")
    )
