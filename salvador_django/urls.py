"""The URLs of signed signal links: ``path("salvador/", include("salvador_django.urls"))``."""

from django.urls import path

from salvador_django import views

app_name = "salvador_django"

urlpatterns = [path("signal/<str:token>/", views.signal_link, name="signal")]
