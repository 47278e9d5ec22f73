"""Settings of the test suite.

Three databases hold tasks: ``default`` (SQLite, a file so that threads and worker
subprocesses share it), ``postgres`` and ``mariadb`` (the local servers). Tests choose
one through the ``backend`` fixture, which points ``SALVADOR["DATABASE"]`` at it.
``mariadb`` is configured only where mysqlclient (the ``[mysql]`` extra) is installed:
Django imports a configured backend's driver on commands such as ``makemigrations``.
"""

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

SECRET_KEY = "salvador-tests"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

_SQLITE_DIR = Path(os.environ.get("SALVADOR_TEST_SQLITE_DIR") or tempfile.gettempdir())

DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_SQLITE_DIR / "salvador-main.sqlite3"),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;",
        },
        "TEST": {"NAME": str(_SQLITE_DIR / "salvador-test.sqlite3")},
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("SALVADOR_TEST_PG_NAME", "postgres"),
        "HOST": os.environ.get("SALVADOR_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("SALVADOR_TEST_PG_PORT", "5432"),
        "USER": os.environ.get("SALVADOR_TEST_PG_USER", "postgres"),
        "CONN_MAX_AGE": 60,
        # Prepared statements, as we advise where no transaction-pooling proxy sits in
        # between (``SALVADOR_TEST_PG_PREPARE=""``: Django's default, none).
        "OPTIONS": (
            {"prepare_threshold": int(os.environ.get("SALVADOR_TEST_PG_PREPARE", "5"))}
            if os.environ.get("SALVADOR_TEST_PG_PREPARE", "5")
            else {}
        ),
        # Separate names let several test runs share the server at once.
        "TEST": {
            "NAME": os.environ.get("SALVADOR_TEST_PG_TEST_NAME", "salvador_test"),
            "DEPENDENCIES": [],
        },
    },
}

if importlib.util.find_spec("MySQLdb"):
    DATABASES["mariadb"] = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": os.environ.get("SALVADOR_TEST_MYSQL_NAME", "test"),
        "HOST": os.environ.get("SALVADOR_TEST_MYSQL_HOST", "127.0.0.1"),
        "PORT": os.environ.get("SALVADOR_TEST_MYSQL_PORT", "3306"),
        "USER": os.environ.get("SALVADOR_TEST_MYSQL_USER", "root"),
        "PASSWORD": os.environ.get("SALVADOR_TEST_MYSQL_PASSWORD", ""),
        "CONN_MAX_AGE": 60,
        # What docs/databases.md asks of a MySQL or MariaDB store.
        "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
        "TEST": {
            "NAME": os.environ.get("SALVADOR_TEST_MYSQL_TEST_NAME", "salvador_test"),
            "CHARSET": "utf8mb4",
            "DEPENDENCIES": [],
        },
    }

# Worker subprocesses started by the tests talk to the test databases directly.
if os.environ.get("SALVADOR_TEST_USE_TEST_DATABASES"):
    for _alias in DATABASES:
        DATABASES[_alias]["NAME"] = DATABASES[_alias]["TEST"]["NAME"]

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("SALVADOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    },
}

SALVADOR = {
    "QUEUE": os.environ.get("SALVADOR_TEST_QUEUE", "database"),
    "REDIS_CONNECTION": "redis",
    "KEY_PREFIX": os.environ.get("SALVADOR_TEST_KEY_PREFIX", "salvador-test:"),
    "DATABASE": os.environ.get("SALVADOR_TEST_DATABASE", "default"),
    "POLL_INTERVAL": float(os.environ.get("SALVADOR_TEST_POLL_INTERVAL", "0.05")),
    "LEASE_SECONDS": float(os.environ.get("SALVADOR_TEST_LEASE_SECONDS", "60")),
    "SWEEP_INTERVAL": float(os.environ.get("SALVADOR_TEST_SWEEP_INTERVAL", "30")),
    "MAX_RECOVERIES": int(os.environ.get("SALVADOR_TEST_MAX_RECOVERIES", "5")),
    "DISPATCH": os.environ.get("SALVADOR_TEST_DISPATCH") or None,
    # Under Celery: how many steps of one graph task run at the same time.
    "CONCURRENCY": int(os.environ.get("SALVADOR_TEST_CONCURRENCY", "1")),
    "METRICS": bool(os.environ.get("SALVADOR_TEST_METRICS")),
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "salvador_django",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "salvador_django": {
            "handlers": ["console"],
            "level": os.environ.get("SALVADOR_LOG_LEVEL", "WARNING"),
        }
    },
}

if os.environ.get("SALVADOR_TEST_SPANS_FILE"):  # a worker subprocess of the tracing tests
    from tests.support.spans import export_to_file

    export_to_file()

#: The django.tasks backend, in the worker subprocesses of its tests (the tests in this
#: process set TASKS through the ``salvador_tasks`` fixture).
TASKS_ON_SALVADOR = {
    "default": {
        "BACKEND": "salvador_django.tasks.SalvadorBackend",
        "QUEUES": ["default", "other"],
        "OPTIONS": {"RETRY": {"max_attempts": 3, "initial_delay": 0.01, "jitter": False}},
    }
}
if os.environ.get("SALVADOR_TEST_TASKS"):
    TASKS = TASKS_ON_SALVADOR
