"""The spans of the fault-injection run: every process exports the traced workflow's.

With ``CHAOS_SPANS_DIR`` set, each process of the run (the run itself and each worker:
``benchmarks.faults.settings`` calls :func:`export_spans`) has an OpenTelemetry SDK
whose ``SimpleSpanProcessor`` writes each span of the traced workflow, as it ends, as
one line of JSON to ``spans-<pid>.jsonl`` in that directory, with one ``write`` to a
file opened with ``O_APPEND``: the threads of a process do not mix their lines, and a
line is there even if the process dies a moment later. Spans of the other workflows
are dropped unexported. No Django import here: the settings import it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from benchmarks.faults.traced_checks import ROOT_SPAN, WORKFLOW

SPANS_DIR = "CHAOS_SPANS_DIR"


def export_spans() -> None:
    """In a process of the run: the SDK, exporting this workflow's spans to a file of
    the process's own in ``CHAOS_SPANS_DIR`` (nothing when it is not set)."""
    directory = os.environ.get(SPANS_DIR)
    if not directory:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class LineExporter(SpanExporter):
        def __init__(self, path: Path) -> None:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            self.lock = threading.Lock()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            data = "".join(span.to_json(indent=None) + "\n" for span in spans).encode()
            with self.lock:
                os.write(self.fd, data)
            return SpanExportResult.SUCCESS

    class ThisWorkflow(SimpleSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            attributes = span.attributes or {}
            if span.name == ROOT_SPAN or attributes.get("salvador.workflow") == WORKFLOW:
                super().on_end(span)

    provider = TracerProvider()
    path = Path(directory) / f"spans-{os.getpid()}.jsonl"
    provider.add_span_processor(ThisWorkflow(LineExporter(path)))
    trace.set_tracer_provider(provider)
