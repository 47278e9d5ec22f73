"""Run by ``tox -e nocelery``: salvador_django works where Celery is not installed."""

import importlib.util

import django
from django.conf import settings


def main() -> None:
    assert importlib.util.find_spec("celery") is None, "this check needs Celery absent"
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "salvador_django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
        SALVADOR={"DISPATCH": "celery"},
    )
    django.setup()
    import salvador_django
    from salvador_django.checks import check_settings
    from salvador_django.contrib import celery

    assert salvador_django.Workflow is not None
    assert not celery.celery_available()
    assert celery.run_task is None
    assert [m.id for m in check_settings()] == ["salvador.E030"]
    print("salvador_django imports and checks without Celery: ok")


if __name__ == "__main__":
    main()
