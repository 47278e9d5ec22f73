"""OpenTelemetry: one trace from the submitting code through every step attempt.

With the real SDK (its in-memory exporter), not a mock: see ``tests/support/spans.py``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from salvador_django import TaskStatus, Workflow, submit
from salvador_django.models import Task
from salvador_django.testing import run_until_idle
from tests.support import spans as sdk
from tests.support.processes import ROOT
from tests.support.tasks import make_due

traced_inside = Workflow("traced-inside")


@traced_inside.step("work")
def work(task: Any) -> None:
    with trace.get_tracer("the-application").start_as_current_span("the step's own span"):
        pass


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = sdk.memory()
    exporter.clear()
    yield exporter
    exporter.clear()


def named(found: Sequence[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [span for span in found if span.name.startswith(prefix)]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_the_request_the_submit_and_every_step_share_one_trace(backend, spans):
    with trace.get_tracer("the-web-app").start_as_current_span("POST /orders") as request:
        task = submit("three-steps", {})
    run_until_idle()
    found = spans.get_finished_spans()
    (submit_span,) = named(found, "salvador.submit")
    steps = named(found, "salvador.step")
    trace_id = request.get_span_context().trace_id
    assert submit_span.name == "salvador.submit three-steps"
    assert parent_of(submit_span) == request.get_span_context().span_id
    assert [s.name for s in steps] == [
        "salvador.step three-steps.first", "salvador.step three-steps.second",
        "salvador.step three-steps.third",
    ]  # fmt: skip
    assert {s.context.trace_id for s in [submit_span, *steps]} == {trace_id}
    assert {parent_of(s) for s in steps} == {submit_span.context.span_id}
    first = steps[0].attributes
    assert first is not None
    assert dict(first) == {
        "salvador.task_id": str(task.id), "salvador.workflow": "three-steps",
        "salvador.step": "first", "salvador.attempt": 1, "salvador.worker": "run_until_idle",
        "salvador.outcome": "completed",
    }  # fmt: skip
    assert Task.objects.using(backend).get(id=task.id).trace_context["traceparent"]


def test_a_retried_step_has_a_span_per_attempt_and_its_failure_recorded(backend, spans):
    task = submit("flaky", {"succeed_on": 2})
    run_until_idle()
    make_due(task, backend)
    run_until_idle()
    unreliable = named(spans.get_finished_spans(), "salvador.step flaky.unreliable")
    assert [s.attributes["salvador.attempt"] for s in unreliable] == [1, 2]
    failed, passed = unreliable
    assert failed.attributes["salvador.outcome"] == "retrying"
    assert failed.status.status_code == StatusCode.ERROR
    assert "ConnectionError: attempt 1 failed" in (failed.status.description or "")
    assert [event.name for event in failed.events] == ["exception"]
    assert passed.status.status_code == StatusCode.UNSET
    assert parent_of(failed) == parent_of(passed)  # both children of the submit


def test_a_step_that_fails_for_good_and_one_that_waits_say_so(backend, spans):
    submit("breaks-second", {})
    submit("approval", {})
    run_until_idle()
    found = spans.get_finished_spans()
    (second,) = named(found, "salvador.step breaks-second.second")
    (decide,) = named(found, "salvador.step approval.decide")
    assert second.attributes["salvador.outcome"] == "failed"
    assert second.status.status_code == StatusCode.ERROR
    assert decide.attributes["salvador.outcome"] == "waiting"


def test_children_are_in_their_parent_s_trace_under_the_step_that_started_them(backend, spans):
    parent = submit("fan-out", {"count": 2})
    run_until_idle()
    found = spans.get_finished_spans()
    # The step starts its children and waits for them; woken, it runs again and
    # finds them finished.
    spread, again = named(found, "salvador.step fan-out.spread")
    assert spread.attributes["salvador.outcome"] == "waiting"
    assert again.attributes["salvador.outcome"] == "completed"
    children = named(found, "salvador.submit square")
    assert len(children) == 2
    assert {parent_of(child) for child in children} == {spread.context.span_id}
    squares = named(found, "salvador.step square")
    assert len(squares) == 2
    trace_ids = {s.context.trace_id for s in [*children, *squares, spread, again]}
    assert len(trace_ids) == 1
    assert Task.objects.using(backend).get(id=parent.id).status == TaskStatus.COMPLETED


def test_a_step_s_own_spans_are_children_of_its_span(backend, spans):
    submit("traced-inside", {})
    run_until_idle()
    found = spans.get_finished_spans()
    (step,) = named(found, "salvador.step traced-inside.work")
    (own,) = named(found, "the step's own span")
    assert parent_of(own) == step.context.span_id


class Raising(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> Any:
        raise ConnectionError("the collector is unreachable")

    def shutdown(self) -> None:
        pass


class Blocked(SpanExporter):
    """An exporter stuck until released: a collector that does not answer."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.called = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> Any:
        self.called.set()
        self.release.wait(30)

    def shutdown(self) -> None:
        self.release.set()


def test_an_exporter_that_fails_or_hangs_never_fails_or_holds_up_a_step(backend, spans, caplog):
    blocked = Blocked()
    batch = BatchSpanProcessor(blocked, schedule_delay_millis=1)
    try:
        with sdk.plugged(SimpleSpanProcessor(Raising())), sdk.plugged(batch):
            task = submit("three-steps", {})
            run_until_idle()
            # The task completed while the batch exporter was stuck on its spans.
            assert Task.objects.using(backend).get(id=task.id).status == TaskStatus.COMPLETED
            assert blocked.called.wait(10)
    finally:
        blocked.release.set()
        batch.shutdown()
    assert len(named(spans.get_finished_spans(), "salvador.step three-steps")) == 3


def test_without_an_sdk_nothing_is_traced_or_stored():
    # A fresh process: the API alone (no SDK configured) records nothing.
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; "
        "django.setup(); from salvador_django import tracing; "
        "print(tracing.enabled(), tracing.submitted('three-steps', 'id'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "False None", done.stderr
