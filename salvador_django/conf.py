"""The ``SALVADOR`` setting, read at use time through :func:`get_settings`."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from salvador_django.exceptions import ConfigurationError
from salvador_django.retry import Retry

DEFAULTS: dict[str, Any] = {
    "QUEUE": "database",
    "DATABASE": "default",
    "REDIS_CONNECTION": "default",
    "KEY_PREFIX": "salvador:",
    "CONCURRENCY": 1,
    "POLL_INTERVAL": 1.0,
    "LEASE_SECONDS": 60,
    "SWEEP_INTERVAL": 30,
    "MAX_BODY_BYTES": 1_048_576,
    "MAX_RECOVERIES": 5,
    "MAX_CATCH_UP": 100,
    "DISPATCH": None,
    "RETRY": None,
    "METRICS": False,
    "HEALTH_MAX_DUE_AGE": 300,
}

QUEUE_ALIASES = {
    "database": "salvador_django.queues.database.DatabaseQueue",
    "redis": "salvador_django.queues.redis.RedisQueue",
}

#: Where each ``DISPATCH`` value's function lives, loaded by dotted path when first used
#: (the core never imports ``contrib``).
DISPATCHERS = {"celery": "salvador_django.contrib.celery.dispatch"}


@dataclass(frozen=True)
class SalvadorSettings:
    """The validated ``SALVADOR`` setting with every default filled in."""

    QUEUE: str
    DATABASE: str
    REDIS_CONNECTION: str
    KEY_PREFIX: str
    CONCURRENCY: int
    POLL_INTERVAL: float
    LEASE_SECONDS: float
    SWEEP_INTERVAL: float
    MAX_BODY_BYTES: int
    MAX_RECOVERIES: int
    MAX_CATCH_UP: int
    DISPATCH: str | None
    RETRY: Retry | None
    #: Count Prometheus metrics in every process, served by ``salvador_django.urls``.
    METRICS: bool
    HEALTH_MAX_DUE_AGE: float


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_number(value: Any) -> bool:
    """A number of seconds: positive and finite (not NaN, not infinity)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and (isinstance(value, int) or math.isfinite(value))
    )


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


_VALIDATORS: dict[str, tuple[Any, str]] = {
    "QUEUE": (_non_empty_str, "'database', 'redis' or a dotted path to a Queue class"),
    "DATABASE": (_non_empty_str, "a database alias"),
    "REDIS_CONNECTION": (_non_empty_str, "a django-redis cache alias"),
    "KEY_PREFIX": (lambda v: isinstance(v, str), "a string"),
    "CONCURRENCY": (_positive_int, "a positive int"),
    "POLL_INTERVAL": (_positive_number, "a positive, finite number of seconds"),
    "LEASE_SECONDS": (_positive_number, "a positive, finite number of seconds"),
    "SWEEP_INTERVAL": (_positive_number, "a positive, finite number of seconds"),
    "MAX_BODY_BYTES": (_positive_int, "a positive int"),
    "MAX_RECOVERIES": (_positive_int, "a positive int"),
    "MAX_CATCH_UP": (_positive_int, "a positive int"),
    "DISPATCH": (lambda v: v is None or v == "celery", "None or 'celery'"),
    "RETRY": (lambda v: v is None or isinstance(v, Retry), "None or a salvador_django.Retry"),
    "METRICS": (lambda v: isinstance(v, bool), "True or False"),
    "HEALTH_MAX_DUE_AGE": (_positive_number, "a positive, finite number of seconds"),
}


def raw_settings() -> Any:
    """The ``SALVADOR`` setting as the user wrote it (``{}`` when absent)."""
    return getattr(django_settings, "SALVADOR", {})


def setting_problems(raw: Any) -> list[tuple[str, str]]:
    """Problems of a raw ``SALVADOR`` value, as ``(check id, message)`` pairs."""
    if not isinstance(raw, dict):
        return [("salvador.E001", f"SALVADOR must be a dict, not {type(raw).__name__}.")]
    problems = [
        (
            "salvador.E002",
            f"SALVADOR has an unknown key {key!r}; known keys: {', '.join(DEFAULTS)}.",
        )
        for key in raw
        if key not in DEFAULTS
    ]
    for key, (is_valid, expected) in _VALIDATORS.items():
        if key in raw and not is_valid(raw[key]):
            problems.append(
                ("salvador.E003", f"SALVADOR[{key!r}] must be {expected}, not {raw[key]!r}.")
            )
    return problems


@functools.cache
def get_settings() -> SalvadorSettings:
    """The current settings; raises :class:`ConfigurationError` if they are invalid."""
    raw = raw_settings()
    problems = setting_problems(raw)
    if problems:
        raise ConfigurationError(" ".join(message for _, message in problems))
    values = {**DEFAULTS, **raw}
    return SalvadorSettings(**{f.name: values[f.name] for f in fields(SalvadorSettings)})


def queue_path(name: str) -> str:
    """The dotted path of the queue class that ``name`` designates."""
    return QUEUE_ALIASES.get(name, name)


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SALVADOR":
        get_settings.cache_clear()
