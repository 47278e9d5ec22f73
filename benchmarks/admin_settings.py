"""Settings of the admin benchmark (``benchmarks/admin_pages.py``).

The Django admin on the PostgreSQL database ``salvador_admin_bench`` (or
``SALVADOR_ADMIN_BENCH_DB``) of
``SALVADOR_BENCH_PG_HOST``/``_PORT``/``_USER`` (default 127.0.0.1:5432, postgres).
"""

import os

SECRET_KEY = "salvador-admin-bench"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "benchmarks.admin_urls"
STATIC_URL = "static/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("SALVADOR_ADMIN_BENCH_DB", "salvador_admin_bench"),
        "HOST": os.environ.get("SALVADOR_BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("SALVADOR_BENCH_PG_PORT", "5432"),
        "USER": os.environ.get("SALVADOR_BENCH_PG_USER", "postgres"),
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "salvador_django",
    "benchmarks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]
