"""The example project; its Celery app loads with Django when Celery is installed."""

try:  # so that `manage.py shell` and runserver send tasks through this app's broker
    from example_project.celery import app as celery_app
except ImportError:  # Celery is optional: the demo runs without it
    celery_app = None

__all__ = ["celery_app"]
