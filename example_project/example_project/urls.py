"""URLs of the example project: the admin, where operators triage failed tasks, and the
signed links that send signals to waiting tasks."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("salvador/", include("salvador_django.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
