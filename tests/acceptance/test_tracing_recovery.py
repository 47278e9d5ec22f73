"""The trace of a task survives its worker: SIGKILLed mid-step, resumed by another."""

import signal

import pytest
from opentelemetry import trace

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from tests.support import spans as sdk
from tests.support.tasks import expire_lease
from tests.support.waiting import wait_until
from tests.testapp.models import Event

pytestmark = pytest.mark.slow


def test_steps_run_after_a_crash_on_another_worker_stay_in_the_submit_s_trace(
    backend, start_worker, tmp_path
):
    memory = sdk.memory()
    memory.clear()
    with trace.get_tracer("the-web-app").start_as_current_span("POST /orders") as request:
        task = submit("waits", {"wait": {"second": 60}})
    (submitted,) = [s for s in memory.get_finished_spans() if s.name == "salvador.submit waits"]
    killed_spans, resumed_spans = tmp_path / "killed.jsonl", tmp_path / "resumed.jsonl"
    first = start_worker(sweep_interval=0.5, SALVADOR_TEST_SPANS_FILE=str(killed_spans))
    events = Event.objects.using(backend).filter(task_id=task.id)
    wait_until(lambda: events.filter(step="second").exists())
    first.signal(signal.SIGKILL)
    first.wait()
    Task.objects.using(backend).filter(id=task.id).update(body={})  # no wait now
    assert expire_lease(task, backend) == 1
    start_worker(sweep_interval=0.5, SALVADOR_TEST_SPANS_FILE=str(resumed_spans))
    rows = Task.objects.using(backend)
    wait_until(lambda: rows.get(id=task.id).status == TaskStatus.COMPLETED, timeout=30)

    killed = sdk.read_spans(killed_spans)
    wait_until(lambda: len(sdk.read_spans(resumed_spans)) >= 2, timeout=10)
    resumed = sdk.read_spans(resumed_spans)
    # The killed worker exported the step it finished; the one it ran when it died
    # never ended. The other worker ran that step again, and the last one.
    assert [(s["name"], s["attributes"]["salvador.outcome"]) for s in killed] == [
        ("salvador.step waits.first", "completed")
    ]
    assert [(s["name"], s["attributes"]["salvador.outcome"]) for s in resumed] == [
        ("salvador.step waits.second", "completed"),
        ("salvador.step waits.third", "completed"),
    ]
    assert killed[0]["attributes"]["salvador.worker"] != resumed[0]["attributes"]["salvador.worker"]
    trace_id = f"0x{request.get_span_context().trace_id:032x}"
    submit_id = f"0x{submitted.context.span_id:016x}"
    for span in [*killed, *resumed]:
        assert span["context"]["trace_id"] == trace_id
        assert span["parent_id"] == submit_id
