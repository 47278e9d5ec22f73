import pytest
from django.core.exceptions import ImproperlyConfigured

from salvador_django import Retry, Workflow
from salvador_django.definitions import registry
from salvador_django.exceptions import ConfigurationError, WorkflowNotFound


def noop(task):
    return None


def test_workflow_registers_itself_under_its_name(workflow_names):
    workflow_names.append("unit-registers")
    workflow = Workflow("unit-registers")
    assert registry.get("unit-registers") is workflow
    assert "unit-registers" in registry.names()


def test_duplicate_workflow_name_is_improperly_configured(workflow_names):
    workflow_names.append("unit-duplicate")
    Workflow("unit-duplicate")
    with pytest.raises(ImproperlyConfigured, match="already registered"):
        Workflow("unit-duplicate")


def test_steps_are_chainable_and_keep_definition_order(workflow_names):
    workflow_names.append("unit-chain")
    workflow = Workflow("unit-chain").step("a", noop).step("b", noop)

    @workflow.step("c", retry=Retry(max_attempts=2), timeout=5, atomic=True)
    def c(task):
        return "c"

    assert [s.name for s in workflow.steps] == ["a", "b", "c"]
    assert c(None) == "c"  # the decorator returns the function itself
    assert workflow.steps[2].retry.max_attempts == 2
    assert workflow.steps[2].timeout == 5
    assert workflow.steps[2].atomic is True
    assert workflow.retry_for(workflow.steps[0]).max_attempts == 1  # no retry by default
    assert workflow.index_of("b") == 1
    assert workflow.index_of("missing") is None


def test_step_names_are_unique_within_a_workflow(workflow_names):
    workflow_names.append("unit-unique")
    workflow = Workflow("unit-unique").step("a", noop)
    with pytest.raises(ConfigurationError, match="already has a step named 'a'"):
        workflow.step("a", noop)


@pytest.mark.parametrize("name", ["", "   ", None, 3, "x" * 201])
def test_invalid_names_are_rejected(name, workflow_names):
    with pytest.raises(ConfigurationError):
        Workflow(name)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fn": "not callable"}, TypeError),
        ({"fn": noop, "retry": 3}, TypeError),
        ({"fn": noop, "timeout": 0}, ValueError),
        ({"fn": noop, "timeout": -1}, ValueError),
        ({"fn": noop, "compensate": "not callable"}, TypeError),
    ],
)
def test_invalid_step_arguments_are_rejected(kwargs, error, workflow_names):
    workflow_names.append("unit-bad-step")
    workflow = Workflow("unit-bad-step")
    with pytest.raises(error):
        workflow.step("s", **kwargs)
    assert workflow.steps == ()


def test_unknown_workflow_lists_the_registered_ones():
    with pytest.raises(WorkflowNotFound, match=r"'nope'.*three-steps"):
        registry.get("nope")


def test_autodiscovery_registered_the_test_apps_workflows():
    assert {"three-steps", "breaks-second", "flaky", "atomic"} <= set(registry.names())
