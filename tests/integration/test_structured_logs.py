"""Every log record of the app carries the task, step, attempt and worker it is about."""

from __future__ import annotations

import json
import logging
from typing import Any

from salvador_django import Workflow, submit
from salvador_django.logs import FIELDS, TaskContextFilter, task_context
from salvador_django.testing import run_until_idle
from tests.support.tasks import make_due

talks = Workflow("talks")


@talks.step("say")
def say(task: Any) -> None:
    logging.getLogger("an.application").warning("hello from the step")


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name, "missing") for name in FIELDS}


def test_the_app_s_records_say_which_task_step_and_attempt(backend, caplog):
    with caplog.at_level(logging.INFO, logger="salvador_django"):
        task = submit("flaky", {"succeed_on": 2})
        run_until_idle()
        make_due(task, backend)
        run_until_idle()
    ours = [r for r in caplog.records if r.name == "salvador_django"]
    about = [r for r in ours if str(task.id) in r.getMessage()]
    assert about, "the run logged nothing about the task"
    retried = next(r for r in about if "retry in" in r.getMessage())
    assert fields(retried) == {
        "task_id": str(task.id), "workflow": "flaky", "step": "unreliable", "attempt": 1,
        "worker": "run_until_idle",
    }  # fmt: skip
    completed = next(r for r in about if r.getMessage().endswith("completed"))
    assert (completed.task_id, completed.workflow) == (str(task.id), "flaky")
    # Every record of the app has the fields, None where they do not apply.
    assert all(set(FIELDS) <= set(vars(r)) for r in ours)


def test_a_filter_on_a_handler_gives_a_step_s_own_records_the_fields(backend):
    lines: list[str] = []

    class JsonLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.dumps({"message": record.getMessage(), **fields(record)}))

    handler = JsonLines()
    handler.addFilter(TaskContextFilter())
    logger = logging.getLogger("an.application")
    logger.addHandler(handler)
    try:
        task = submit("talks", {})
        run_until_idle()
        logger.warning("outside any task")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in lines)
    assert inside == {
        "message": "hello from the step", "task_id": str(task.id), "workflow": "talks",
        "step": "say", "attempt": 1, "worker": "run_until_idle",
    }  # fmt: skip
    assert outside == {"message": "outside any task", **dict.fromkeys(FIELDS)}


def test_an_extra_of_the_record_s_own_wins():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.task_id = "mine"
    with task_context(task_id="the context's", step="s"):
        TaskContextFilter().filter(record)
    assert (record.task_id, record.step) == ("mine", "s")
