import math

import pytest

from salvador_django.checks import check_settings
from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError


def ids(messages):
    return [m.id for m in messages]


def test_default_settings_pass_the_checks(settings):
    settings.SALVADOR = {}
    assert check_settings() == []
    assert get_settings().QUEUE == "database"
    assert get_settings().LEASE_SECONDS == 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], ["salvador.E001"]),
        ({"QUEU": "database"}, ["salvador.E002"]),
        ({"CONCURRENCY": 0}, ["salvador.E003"]),
        ({"CONCURRENCY": True}, ["salvador.E003"]),
        ({"POLL_INTERVAL": "1"}, ["salvador.E003"]),
        ({"LEASE_SECONDS": -5}, ["salvador.E003"]),
        ({"POLL_INTERVAL": math.inf}, ["salvador.E003"]),
        ({"POLL_INTERVAL": math.nan}, ["salvador.E003"]),
        ({"LEASE_SECONDS": math.inf}, ["salvador.E003"]),
        ({"LEASE_SECONDS": math.nan}, ["salvador.E003"]),
        ({"SWEEP_INTERVAL": math.inf}, ["salvador.E003"]),
        ({"SWEEP_INTERVAL": -math.inf}, ["salvador.E003"]),
        ({"SWEEP_INTERVAL": math.nan}, ["salvador.E003"]),
        ({"MAX_BODY_BYTES": 1.5}, ["salvador.E003"]),
        ({"DISPATCH": "rq"}, ["salvador.E003"]),
        ({"QUEUE": "no.such.Queue"}, ["salvador.E004"]),
        ({"QUEUE": "salvador_django.models.Task"}, ["salvador.E004"]),
        ({"DATABASE": "missing"}, ["salvador.E010"]),
        ({"LEASE_SECONDS": 1}, ["salvador.W002"]),
        ({"DISPATCH": "celery"}, []),  # Celery is installed in the test environment
    ],
)
def test_bad_settings_are_reported(settings, value, expected):
    settings.SALVADOR = value
    assert ids(check_settings()) == expected


def test_every_problem_is_reported_at_once(settings):
    settings.SALVADOR = {"BOGUS": 1, "CONCURRENCY": "many"}
    assert sorted(ids(check_settings())) == ["salvador.E002", "salvador.E003"]


def test_use_tz_false_is_warned(settings):
    settings.USE_TZ = False
    assert ids(check_settings()) == ["salvador.W001"]


def test_invalid_settings_raise_at_use_time(settings):
    settings.SALVADOR = {"CONCURRENCY": -1}
    with pytest.raises(ConfigurationError, match="CONCURRENCY"):
        get_settings()


def test_settings_changes_are_seen_at_use_time(settings):
    settings.SALVADOR = {"POLL_INTERVAL": 0.5}
    assert get_settings().POLL_INTERVAL == 0.5
    settings.SALVADOR = {"POLL_INTERVAL": 2}
    assert get_settings().POLL_INTERVAL == 2


@pytest.mark.parametrize(
    ("caches", "expected"),
    [
        (
            {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
            ["salvador.E021"],
        ),
        (
            {
                "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
                "redis": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            },
            ["salvador.E022"],
        ),
    ],
)
def test_redis_queue_needs_a_django_redis_cache(settings, caches, expected):
    settings.CACHES = caches
    settings.SALVADOR = {"QUEUE": "redis", "REDIS_CONNECTION": "redis"}
    assert ids(check_settings()) == expected


def test_redis_queue_with_a_django_redis_cache_passes(settings):
    settings.SALVADOR = {"QUEUE": "redis", "REDIS_CONNECTION": "redis"}
    assert check_settings() == []


def test_the_retry_setting_must_be_a_retry(settings):
    from salvador_django import Retry

    settings.SALVADOR = {**settings.SALVADOR, "RETRY": {"max_attempts": 3}}
    assert "salvador.E003" in ids(check_settings())
    settings.SALVADOR = {**settings.SALVADOR, "RETRY": Retry(max_attempts=3)}
    assert "salvador.E003" not in ids(check_settings())
