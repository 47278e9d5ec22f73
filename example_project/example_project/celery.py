"""The Celery app of the example project (needs ``pip install "salvador-django[celery]"``).

From this directory (example_project/), with Redis running::

    SALVADOR_DISPATCH=celery celery -A example_project worker -l info
    celery -A example_project beat -l info

and submit with ``SALVADOR_DISPATCH=celery python manage.py shell``. The demo
(``manage.py demo``) does not need Celery: nothing imports this module but Celery.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# salvador-django's tasks (run_task, sweep) live in its contrib module.
app.autodiscover_tasks(["salvador_django.contrib"], related_name="celery")
