"""The traced workflow of the fault-injection run: ``chaos-traced``.

Three steps that work (sleep ``body["work"][i]``) and commit nothing but their
checkpoint. Every process of the run exports its spans (:mod:`.spans`).
:class:`TracedLoad` submits the tasks, each inside a span of the run's own
(:data:`~.traced_checks.ROOT_SPAN`), and keeps that span's ids.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.faults.paced_load import PacedLoad
from benchmarks.faults.traced_checks import ROOT_SPAN, STEPS, WORKFLOW
from salvador_django import Workflow
from salvador_django.models import Task


def _work(task: Task) -> None:
    time.sleep(task.body["work"][task.step])


traced = Workflow(WORKFLOW)
for _name in STEPS:
    traced.step(_name, _work)


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
