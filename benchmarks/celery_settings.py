"""Settings of the Celery benchmark: ``benchmarks.settings`` plus dispatch to Celery.

Use with ``SALVADOR_BENCH_DB=postgres``. ``SALVADOR_BENCH_DISPATCH`` sets
``SALVADOR["DISPATCH"]`` (default ``celery``; empty or ``none`` turns dispatch off).
Celery reads the ``CELERY_*`` names below (``benchmarks/celery_app.py``): the broker is
``SALVADOR_BENCH_CELERY_BROKER`` (default ``redis://127.0.0.1:6379/14``) and the queue
``SALVADOR_BENCH_CELERY_QUEUE`` (default ``salvador-bench``;
``benchmarks/celery_dispatch.py`` picks a fresh one per run and purges it afterwards).
The Celery options are those of ``tests/celery_app.py``; the prefetch multiplier (1
there) can be changed with ``SALVADOR_BENCH_CELERY_PREFETCH``.
"""

import os

from benchmarks import settings as _base
from benchmarks.settings import *  # noqa: F403

_dispatch = os.environ.get("SALVADOR_BENCH_DISPATCH", "celery").strip()

SALVADOR = {
    **_base.SALVADOR,
    "DISPATCH": None if _dispatch.lower() in ("", "none") else _dispatch,
}

CELERY_BROKER_URL = os.environ.get("SALVADOR_BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/14")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("SALVADOR_BENCH_CELERY_QUEUE", "salvador-bench")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = int(os.environ.get("SALVADOR_BENCH_CELERY_PREFETCH", "1"))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False  # no pidbox queue left on the broker
