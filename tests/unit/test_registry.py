"""What an unknown workflow name tells a user who set things up wrong."""

import pytest
from django.test import override_settings

from salvador_django import submit
from salvador_django.exceptions import WorkflowNotFound
from salvador_django.registry import Registry, registry


def test_an_unknown_name_lists_the_registered_workflows():
    with pytest.raises(WorkflowNotFound, match=r"registered: .*three-steps"):
        registry.get("no-such-workflow")


def test_with_salvador_not_installed_it_says_so():
    apps = ["django.contrib.contenttypes", "django.contrib.auth", "tests.testapp"]
    with override_settings(INSTALLED_APPS=apps), pytest.raises(WorkflowNotFound) as raised:
        Registry().get("process-order")
    assert "'salvador_django' is not in INSTALLED_APPS" in str(raised.value)
    assert "workflows.py" in str(raised.value)


def test_with_nothing_registered_it_says_no_workflows_module_defines_one():
    with pytest.raises(WorkflowNotFound, match=r"no installed app has a workflows\.py"):
        Registry().get("process-order")


def test_submit_of_an_unknown_workflow_names_the_registered_ones():
    with pytest.raises(WorkflowNotFound, match="registered: "):
        submit("no-such-workflow")
