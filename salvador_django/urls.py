"""The app's URLs: ``path("salvador/", include("salvador_django.urls"))``.

Signed signal links (``signal/<token>/``) and the health endpoint (``health/``).
"""

from django.urls import path

from salvador_django import health, views

app_name = "salvador_django"

urlpatterns = [
    path("signal/<str:token>/", views.signal_link, name="signal"),
    path("health/", health.health, name="health"),
]
