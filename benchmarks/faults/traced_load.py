"""The traced workflow's load: each task submitted inside a span of the run's own
(:data:`~.traced_checks.ROOT_SPAN`), whose ids it keeps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.faults.paced_load import PacedLoad
from benchmarks.faults.traced_checks import ROOT_SPAN, STEPS, WORKFLOW


class TracedLoad(PacedLoad):
    """Submits ``count`` tasks of the traced workflow, each inside a span of its own."""

    workflow, key, label, offset = WORKFLOW, "chaos-traced", "traced", 0.75

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: number -> (trace id, span id) of the run's span around its submit.
        self.roots: dict[int, tuple[str, str]] = {}

    def body(self, number: int) -> Any:
        return {"work": [round(self.rng.uniform(*self.work), 4) for _ in STEPS]}

    @contextmanager
    def submitting(self, number: int) -> Iterator[None]:
        from opentelemetry import trace

        tracer = trace.get_tracer("chaos")
        with tracer.start_as_current_span(ROOT_SPAN, attributes={"chaos.number": number}) as span:
            context = span.get_span_context()
            self.roots[number] = (f"{context.trace_id:032x}", f"{context.span_id:016x}")
            yield
