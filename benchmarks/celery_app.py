"""The Celery app of the benchmark: ``celery -A benchmarks.celery_app worker``.

It is configured from the Django settings' ``CELERY_*`` names
(``benchmarks.celery_settings`` unless ``DJANGO_SETTINGS_MODULE`` says otherwise).
Importing it sets Django up, makes the app current and registers the salvador-django
tasks ``salvador_django.run_task`` and ``salvador_django.sweep``.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.celery_settings")

import django

django.setup()

from celery import Celery  # noqa: E402

import salvador_django.contrib.celery  # noqa: E402, F401 - registers the tasks

app = Celery("salvador-bench", set_as_current=True)
app.config_from_object("django.conf:settings", namespace="CELERY")
