"""Settings of the fault-injection run's processes (its workers and itself).

Everything comes from the environment that ``benchmarks/chaos.py`` sets:
``CHAOS_DB`` (``sqlite``, ``postgres`` or ``mariadb``) with ``CHAOS_SQLITE_PATH``,
``CHAOS_PG_PORT`` or ``CHAOS_MYSQL_PORT``; ``CHAOS_QUEUE`` (``database`` or ``redis``) with
``CHAOS_REDIS_URL``; ``CHAOS_LOG``, the execution log the steps append to; and the
short lease and sweep that let a run recover from many faults in a few seconds.
With ``CHAOS_SPANS_DIR``, the process exports the traced workflow's spans there
(:mod:`benchmarks.faults.spans`). ``TASKS`` puts Django's tasks API on our backend, for
the run's Django tasks (:mod:`benchmarks.faults.enqueued`), with quick retries.
"""

import os

from benchmarks.faults.spans import export_spans

SECRET_KEY = "salvador-chaos"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DB = os.environ.get("CHAOS_DB", "sqlite")
if DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "chaos",
            "HOST": "127.0.0.1",
            "PORT": os.environ.get("CHAOS_PG_PORT", "5432"),
            "USER": "postgres",
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
            # Prepared claims and checkpoints, as the benchmark runs them: a restart of
            # PostgreSQL drops them with the connections; psycopg prepares them again.
            "OPTIONS": {"connect_timeout": 2, "prepare_threshold": 5},
        }
    }
elif DB == "mariadb":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "chaos",
            "HOST": "127.0.0.1",
            "PORT": os.environ.get("CHAOS_MYSQL_PORT", "3306"),
            "USER": "root",
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {"connect_timeout": 2, "charset": "utf8mb4"},
        }
    }
elif DB == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("CHAOS_SQLITE_PATH", "chaos.sqlite3"),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
                "timeout": 20,
            },
        }
    }
else:
    raise ValueError(f"CHAOS_DB must be 'sqlite', 'postgres' or 'mariadb', not {DB!r}")

INSTALLED_APPS = ["django.contrib.contenttypes", "salvador_django", "benchmarks.faults"]

SALVADOR: dict[str, object] = {
    "QUEUE": os.environ.get("CHAOS_QUEUE", "database"),
    "POLL_INTERVAL": 0.05,
    "LEASE_SECONDS": float(os.environ.get("CHAOS_LEASE_SECONDS", "3")),
    "SWEEP_INTERVAL": float(os.environ.get("CHAOS_SWEEP_INTERVAL", "1")),
}
TASKS = {
    "default": {
        "BACKEND": "salvador_django.tasks.SalvadorBackend",
        "OPTIONS": {"RETRY": {"max_attempts": 3, "initial_delay": 0.2, "jitter": False}},
    }
}
if SALVADOR["QUEUE"] == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["CHAOS_REDIS_URL"],
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 3},
        }
    }

export_spans()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"timed": {"format": "%(asctime)s %(process)d %(threadName)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "timed"}},
    "loggers": {
        "salvador_django": {
            "handlers": ["console"],
            "level": os.environ.get("CHAOS_LOG_LEVEL", "WARNING"),
            "propagate": False,
        }
    },
}
