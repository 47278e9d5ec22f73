"""URLs of the admin benchmark: the Django admin, plus the workflows its tasks name."""

from django.contrib import admin
from django.urls import path

from benchmarks import admin_workflows  # noqa: F401 - registers the workflows

urlpatterns = [path("admin/", admin.site.urls)]
