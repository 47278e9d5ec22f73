"""Reading a Django task's result from our rows: the worker of a claim, the class of a
failed attempt's exception."""

from __future__ import annotations

import pytest

from salvador_django.models import StepRun
from salvador_django.tasks.results import claimant, exception_path


@pytest.mark.parametrize(
    ("token", "worker"),
    [
        ("web-1:4242:3:9f8e7d", "web-1:4242"),  # a runworkflows thread
        ("web-1:4242:celery:9f8e7d", "web-1:4242:celery"),  # a Celery task
        ("run_until_idle:9f8e7d", "run_until_idle"),  # the test helper
        (None, ""),
    ],
)
def test_the_worker_of_a_claim_is_named_as_its_step_runs_name_it(token, worker):
    assert claimant(token) == worker


def traceback_of(*lines: str) -> str:
    return "\n".join(["Traceback (most recent call last):", '  File "x.py", line 1, in f',
                      "    raise Boom()", *lines])  # fmt: skip


@pytest.mark.parametrize(
    ("traceback", "path"),
    [
        (traceback_of("ValueError: no"), "builtins.ValueError"),
        (traceback_of("myapp.errors.Boom: a\nmultiline message"), "myapp.errors.Boom"),
        (traceback_of("myapp.errors.Boom", "Note: added by add_note"), "myapp.errors.Boom"),
        (traceback_of("KeyError: 'x'", "    ^^^^"), "builtins.KeyError"),
    ],
)
def test_the_exception_class_is_read_from_the_traceback(traceback, path):
    assert exception_path(StepRun(traceback=traceback, error="ignored")) == path


def test_without_a_traceback_the_error_names_the_class():
    assert exception_path(StepRun(traceback="", error="TimeoutError: slow")) == (
        "builtins.TimeoutError"
    )
