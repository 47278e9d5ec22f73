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
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    AVAILABLE = True
except ImportError:  # the [otel] extra is not installed
    AVAILABLE = False

TRACER_NAME = "salvador_django"

__all__ = ["enabled", "end_step", "start_step", "submitted", "using"]


def enabled() -> bool:
    """Whether an OpenTelemetry SDK is configured (the API alone records nothing)."""
    return _tracer() is not None


#: The tracer of the configured provider: the API sets a provider once per process,
#: and getting a tracer is costly (a fifth of a span's cost), so it is kept.
_cached: tuple[Any, Any] | None = None


def _tracer() -> Any:
    """The app's tracer, or None while no SDK is configured."""
    global _cached
    if not AVAILABLE:
        return None
    provider = trace.get_tracer_provider()
    if _cached is not None and _cached[0] is provider:
        return _cached[1]
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    _cached = (provider, provider.get_tracer(TRACER_NAME))
    return _cached[1]


def _parent(task: Any) -> Any:
    """The context stored with ``task``, parsed once per task instance (a claim)."""
    stored = task.trace_context
    if not stored:
        return None
    cached = getattr(task, "_trace_parent", None)
    if cached is not None and cached[0] is stored:
        return cached[1]
    parent = propagate.extract(stored)
    task._trace_parent = (stored, parent)
    return parent


def submitted(workflow: str, task_id: Any) -> dict[str, str] | None:
    """A ``salvador.submit`` span for a new task, ended at once; the context to store.

    None when tracing is off (nothing is stored).
    """
    tracer = _tracer()
    if tracer is None:
        return None
    try:
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
    tracer = _tracer()
    if tracer is None:
        return None
    try:
        kind = "compensate" if compensation else "step"
        return tracer.start_span(
            f"salvador.{kind} {task.workflow}.{step}",
            context=_parent(task),
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
    return _Current(span)


class _Current:
    """``trace.use_span()`` without its generator and exception handling: the engine
    records a step's exception itself."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any) -> None:
        self.span = span

    def __enter__(self) -> Any:
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self.token)


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
