"""Settings of the benchmark: one database and one queue, chosen by ``SALVADOR_BENCH_DB``.

``SALVADOR_BENCH_DB=sqlite`` (default) uses the file named by
``SALVADOR_BENCH_SQLITE``; ``SALVADOR_BENCH_DB=postgres`` uses the database
``SALVADOR_BENCH_PG_NAME`` (default ``salvador_bench``) on
``SALVADOR_BENCH_PG_HOST``/``_PORT``/``_USER`` (default 127.0.0.1:5432, postgres);
``SALVADOR_BENCH_DB=mariadb`` uses the MariaDB database ``SALVADOR_BENCH_MYSQL_NAME``
(default ``salvador_bench``) on ``SALVADOR_BENCH_MYSQL_HOST``/``_PORT``/``_USER``/
``_PASSWORD`` (default 127.0.0.1:3306, root, no password). All three use the database
queue; on SQLite and MariaDB, which have no LISTEN/NOTIFY, idle workers poll every
``SALVADOR["POLL_INTERVAL"]`` (``SALVADOR_BENCH_POLL_INTERVAL``, default 0.05 s).

``SALVADOR_BENCH_DB=postgres+redis`` (``mariadb+redis``) stores tasks in that same
PostgreSQL (MariaDB) database but queues them in Redis (``SALVADOR["QUEUE"] =
"redis"``) through a django-redis cache on ``SALVADOR_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``), with every key under ``SALVADOR_BENCH_REDIS_PREFIX``
(``benchmarks/run.py`` picks a fresh one per run and deletes its keys afterwards).

``SALVADOR_BENCH_TASKS=1`` (the django-tasks section's processes only: our task
backend connects receivers to our signals) configures ``TASKS`` where Django's tasks
API is there (Django 6, or the ``django-tasks`` backport): the task backend ``default``
is ours (``SalvadorBackend``); with ``django-tasks-db`` installed, ``database`` is its
``DatabaseBackend`` on the same database (the section's peer, run by ``db_worker``).

``SALVADOR_BENCH_OBSERVE=1`` turns every observability feature on (the observability
section's "on" workers): Prometheus metrics (``SALVADOR["METRICS"]``) and an
OpenTelemetry SDK with a batch span processor (``benchmarks.observed``).
"""

import os
import tempfile
from importlib.util import find_spec
from pathlib import Path

from benchmarks import observed

SECRET_KEY = "salvador-bench"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

BACKEND = os.environ.get("SALVADOR_BENCH_DB", "sqlite")
SQLITE_PATH = os.environ.get("SALVADOR_BENCH_SQLITE") or str(
    Path(tempfile.gettempdir()) / "salvador-bench.sqlite3"
)
PG_NAME = os.environ.get("SALVADOR_BENCH_PG_NAME", "salvador_bench")
PG_HOST = os.environ.get("SALVADOR_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("SALVADOR_BENCH_PG_PORT", "5432")
PG_USER = os.environ.get("SALVADOR_BENCH_PG_USER", "postgres")
MYSQL_NAME = os.environ.get("SALVADOR_BENCH_MYSQL_NAME", "salvador_bench")
MYSQL_HOST = os.environ.get("SALVADOR_BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = os.environ.get("SALVADOR_BENCH_MYSQL_PORT", "3306")
MYSQL_USER = os.environ.get("SALVADOR_BENCH_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("SALVADOR_BENCH_MYSQL_PASSWORD", "")
REDIS_URL = os.environ.get("SALVADOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = os.environ.get("SALVADOR_BENCH_REDIS_PREFIX", "salvador-bench:")

if BACKEND in ("postgres", "postgres+redis"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": PG_NAME,
            "HOST": PG_HOST,
            "PORT": PG_PORT,
            "USER": PG_USER,
            "CONN_MAX_AGE": 600,
            # Prepared statements (a direct connection, no pooler): psycopg's own
            # default, which the peers on PostgreSQL run with; Django leaves them off.
            # SALVADOR_BENCH_PREPARE=0 measures without (docs/benchmarks.md).
            "OPTIONS": (
                {} if os.environ.get("SALVADOR_BENCH_PREPARE") == "0" else {"prepare_threshold": 5}
            ),
        }
    }
elif BACKEND in ("mariadb", "mariadb+redis"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": MYSQL_NAME,
            "HOST": MYSQL_HOST,
            "PORT": MYSQL_PORT,
            "USER": MYSQL_USER,
            "PASSWORD": MYSQL_PASSWORD,
            "CONN_MAX_AGE": 600,
            "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
        }
    }
elif BACKEND == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
                "timeout": 20,
            },
        }
    }
else:
    raise ValueError(
        "SALVADOR_BENCH_DB must be 'sqlite', 'postgres', 'postgres+redis', 'mariadb' or "
        f"'mariadb+redis', not {BACKEND!r}"
    )

INSTALLED_APPS = ["django.contrib.contenttypes", "salvador_django", "benchmarks"]

if os.environ.get("SALVADOR_BENCH_TASKS") == "1" and (
    find_spec("django.tasks") or find_spec("django_tasks")
):
    TASKS: dict[str, dict[str, object]] = {
        "default": {"BACKEND": "salvador_django.tasks.SalvadorBackend"}
    }
    if find_spec("django_tasks_db"):
        INSTALLED_APPS.append("django_tasks_db")
        TASKS["database"] = {"BACKEND": "django_tasks_db.DatabaseBackend"}

SALVADOR: dict[str, object] = {
    "POLL_INTERVAL": float(os.environ.get("SALVADOR_BENCH_POLL_INTERVAL", "0.05"))
}

if BACKEND in ("postgres+redis", "mariadb+redis"):
    CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL}}
    SALVADOR.update(QUEUE="redis", REDIS_CONNECTION="default", KEY_PREFIX=REDIS_PREFIX)

if observed.wanted("metrics"):
    SALVADOR["METRICS"] = True
if observed.wanted("tracing"):
    observed.configure()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "salvador_django": {
            "handlers": ["console"],
            "level": os.environ.get("SALVADOR_BENCH_LOG_LEVEL", "WARNING"),
        }
    },
}
