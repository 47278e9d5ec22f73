"""A backend for Django's tasks API (``django.tasks``, or the ``django_tasks`` backport):
``TASKS = {"default": {"BACKEND": "salvador_django.tasks.SalvadorBackend"}}``."""

from salvador_django.tasks.backend import SalvadorBackend, SalvadorTask, retrying

__all__ = ["SalvadorBackend", "SalvadorTask", "retrying"]
