"""Signed signal links and metrics: ``path("salvador/", include("salvador_django.urls"))``."""

from django.urls import path

from salvador_django import views
from salvador_django.metrics.views import metrics_view

app_name = "salvador_django"

urlpatterns = [
    path("signal/<str:token>/", views.signal_link, name="signal"),
    path("metrics/", metrics_view, name="metrics"),
]
