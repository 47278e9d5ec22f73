"""OpenTelemetry: a span per step attempt, in the trace of the code that submitted the task.

Through the ``[otel]`` extra (``opentelemetry-api``); the application configures the
SDK and its exporter. Without the API installed, or with no SDK configured (the
API's default provider), every function here does nothing and costs one check.

``submit()`` opens a short ``salvador.submit <workflow>`` span, a child of whatever
span is current (the request's), and stores its context with the task (W3C trace
context). Each attempt of each step is a ``salvador.step <workflow>.<step>`` span,
a child of that one, whichever worker runs it and whenever: so one trace shows the
request, the submit, every step, its retries, its waits, the steps a worker ran
after another crashed, and the children the steps started (their submit spans are
children of the step that started them). A span is exported by the SDK's span
processor: a ``BatchSpanProcessor`` keeps export off the step's path.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

logger = logging.getLogger("salvador_django")

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    AVAILABLE = True
except ImportError:  # the [otel] extra is not installed
    AVAILABLE = False

TRACER_NAME = "salvador_django"

__all__ = ["enabled", "end_step", "start_step", "submitted", "using"]


def enabled() -> bool:
    """Whether an OpenTelemetry SDK is configured (the API alone records nothing)."""
    if not AVAILABLE:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def submitted(workflow: str, task_id: Any) -> dict[str, str] | None:
    """A ``salvador.submit`` span for a new task, ended at once; the context to store.

    None when tracing is off (nothing is stored).
    """
    if not enabled():
        return None
    try:
        tracer = trace.get_tracer(TRACER_NAME)
        span = tracer.start_span(
            f"salvador.submit {workflow}",
            kind=SpanKind.PRODUCER,
            attributes={"salvador.workflow": workflow, "salvador.task_id": str(task_id)},
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        span.end()
        return carrier or None
    except Exception as exc:  # tracing never fails a submit
        logger.warning("salvador: cannot trace the submit of a task: %r", exc)
        return None


def start_step(
    task: Any, step: str, attempt: int, worker: str, *, compensation: bool = False
) -> Any:
    """Start the span of one attempt of ``step`` of ``task``; None when tracing is off."""
    if not enabled():
        return None
    try:
        parent = propagate.extract(task.trace_context) if task.trace_context else None
        kind = "compensate" if compensation else "step"
        return trace.get_tracer(TRACER_NAME).start_span(
            f"salvador.{kind} {task.workflow}.{step}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "salvador.task_id": str(task.id),
                "salvador.workflow": task.workflow,
                "salvador.step": step,
                "salvador.attempt": attempt,
                "salvador.worker": worker,
            },
        )
    except Exception as exc:
        logger.warning("salvador: cannot start the span of a step: %r", exc)
        return None


def using(span: Any) -> Any:
    """A context manager making ``span`` the current one (the step's own spans nest in
    it); does nothing for None."""
    if span is None:
        return nullcontext()
    return trace.use_span(span, record_exception=False, set_status_on_exception=False)


def end_step(span: Any, outcome: str, error: BaseException | None = None) -> None:
    """End a step's span with its outcome; an error sets its status and is recorded."""
    if span is None:
        return
    try:
        span.set_attribute("salvador.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
    except Exception as exc:
        logger.warning("salvador: cannot end the span of a step: %r", exc)
