"""The Celery app of the tests: ``celery -A tests.celery_app worker``.

The broker and the queue come from ``SALVADOR_TEST_CELERY_BROKER`` and
``SALVADOR_TEST_CELERY_QUEUE``, so each test runs its own workers on its own queue.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from celery import Celery  # noqa: E402

import salvador_django.contrib.celery  # noqa: E402, F401 - registers the tasks


def make_app(broker: str, queue: str) -> Celery:
    """A Celery app on ``broker`` whose messages go to ``queue``."""
    app = Celery("salvador-tests", broker=broker, set_as_current=True)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            "salvador-sweep": {
                "task": "salvador_django.sweep",
                "schedule": float(os.environ.get("SALVADOR_TEST_BEAT_SECONDS", "1")),
                "kwargs": {"max_seconds": 0.8},
            }
        },
    )
    return app


app = make_app(
    os.environ.get("SALVADOR_TEST_CELERY_BROKER", "redis://127.0.0.1:6379/15"),
    os.environ.get("SALVADOR_TEST_CELERY_QUEUE", "salvador-tests"),
)
