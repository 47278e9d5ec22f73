"""A real OpenTelemetry SDK for the tests: spans land in memory, processors can be added.

The global tracer provider can be set once per process: the first test that needs
spans sets it (``memory()``), and it stays for the rest of the session. A
``Switchboard`` processor lets a test add processors of its own (an exporter that
fails, one that blocks) and take them away again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

#: A worker subprocess started with this variable writes its spans, one JSON per line,
#: to that file (``tests.settings`` calls :func:`export_to_file`).
SPANS_FILE = "SALVADOR_TEST_SPANS_FILE"


class Switchboard(SpanProcessor):
    """Passes spans to the processors a test plugs in, for as long as it keeps them."""

    def __init__(self) -> None:
        self.processors: list[SpanProcessor] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for processor in list(self.processors):
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in list(self.processors):
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in list(self.processors):
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in list(self.processors))


_exporter: InMemorySpanExporter | None = None
switchboard = Switchboard()


def memory() -> InMemorySpanExporter:
    """The exporter every span of this process lands in (the SDK set up on first use)."""
    global _exporter
    if _exporter is None:
        provider = TracerProvider()
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        provider.add_span_processor(switchboard)
        trace.set_tracer_provider(provider)
    return _exporter


@contextmanager
def plugged(processor: SpanProcessor) -> Iterator[SpanProcessor]:
    """``processor`` gets the spans ended within the block."""
    switchboard.processors.append(processor)
    try:
        yield processor
    finally:
        switchboard.processors.remove(processor)


def export_to_file() -> None:
    """In a worker subprocess: the SDK, exporting each span as a line of JSON to the
    file named by ``SALVADOR_TEST_SPANS_FILE`` (nothing when it is not set)."""
    path = os.environ.get(SPANS_FILE)
    if not path:
        return
    out = Path(path).open("a", buffering=1)  # noqa: SIM115 - open for the process's life
    provider = TracerProvider()
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The spans a subprocess wrote to ``path`` (none if it wrote no file)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
