"""The test settings with ``TASKS`` on our backend, as the ``salvador_tasks`` fixture sets
them in the test's process: ``runworkflows`` subprocesses of the Django task tests."""

from tests.settings import *  # noqa: F403

TASKS = {
    "default": {
        "BACKEND": "salvador_django.tasks.SalvadorBackend",
        "QUEUES": ["default", "other"],
        "OPTIONS": {"RETRY": {"max_attempts": 3, "initial_delay": 0.01, "jitter": False}},
    }
}
