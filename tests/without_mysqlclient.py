"""Run by ``tox -e nocelery`` (no extras): a MySQL store without mysqlclient names the extra."""

import importlib.util

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def main() -> None:
    assert importlib.util.find_spec("MySQLdb") is None, "this check needs mysqlclient absent"
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "salvador_django"],
        DATABASES={"default": {"ENGINE": "django.db.backends.mysql", "NAME": "tasks"}},
        USE_TZ=True,
    )
    message = "django.setup() did not say that mysqlclient is missing"
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        message = str(exc)
    assert "pip install 'salvador-django[mysql]'" in message, message
    print("salvador_django names the [mysql] extra when mysqlclient is missing: ok")


if __name__ == "__main__":
    main()
