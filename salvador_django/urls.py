"""The app's URLs: ``path("salvador/", include("salvador_django.urls"))``.

Signed signal links (``signal/<token>/``), the health endpoint (``health/``) and the
Prometheus metrics (``metrics/``, served while ``SALVADOR["METRICS"]`` is true).
"""

from django.urls import path

from salvador_django import health, views
from salvador_django.metrics.views import metrics_view

app_name = "salvador_django"

urlpatterns = [
    path("signal/<str:token>/", views.signal_link, name="signal"),
    path("health/", health.health, name="health"),
    path("metrics/", metrics_view, name="metrics"),
]
