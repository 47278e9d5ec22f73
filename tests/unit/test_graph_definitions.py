"""Graph definitions: ``after``, ``after_any`` and ``when``, checked as a whole."""

from __future__ import annotations

import pytest

from salvador_django import Workflow, submit
from salvador_django.checks import check_workflows
from salvador_django.exceptions import ConfigurationError


def noop(task):
    return None


def define(name: str, workflow_names: list[str]) -> Workflow:
    workflow_names.append(name)
    return Workflow(name)


def test_after_left_out_is_the_previous_step_so_a_plain_workflow_stays_a_line(workflow_names):
    line = define("g-line", workflow_names).step("a", noop).step("b", noop).step("c", noop)
    assert [s.after for s in line.steps] == [(), ("a",), ("b",)]
    assert line.graph.linear
    assert line.graph.layers() == [["a"], ["b"], ["c"]]


def test_after_names_dependencies_and_the_graph_gives_its_layers(workflow_names):
    diamond = define("g-diamond", workflow_names)
    diamond.step("a", noop, after=[]).step("b", noop, after="a").step("c", noop, after="a")
    diamond.step("d", noop, after=["b", "c"]).step("e", noop, after=[])
    graph = diamond.graph
    assert not graph.linear
    assert graph.layers() == [["a", "e"], ["b", "c"], ["d"]]
    assert [n.name for n in graph.ready(["a"], [])] == ["b", "c", "e"]
    assert graph.downstream(["b"]) == {"b", "d"}


def test_a_step_may_wait_for_one_defined_later(workflow_names):
    later = define("g-later", workflow_names)
    later.step("report", noop, after=["fetch"]).step("fetch", noop, after=[])
    assert later.graph.layers() == [["fetch"], ["report"]]


def test_a_condition_alone_makes_a_graph(workflow_names):
    guarded = define("g-when", workflow_names)
    guarded.step("a", noop).step("b", noop, when=lambda task: True)
    assert not guarded.graph.linear


def test_an_unknown_name_is_a_configuration_error_naming_it(workflow_names):
    bad = define("g-unknown", workflow_names).step("a", noop).step("b", noop, after=["nope"])
    with pytest.raises(
        ConfigurationError, match=r"Step 'b' of workflow 'g-unknown' waits for 'nope'"
    ):
        _ = bad.graph
    with pytest.raises(ConfigurationError, match="'nope'"):
        submit("g-unknown")


def test_a_cycle_is_a_configuration_error_naming_the_cycle(workflow_names):
    cycle = define("g-cycle", workflow_names)
    cycle.step("x", noop, after="z").step("y", noop, after="x").step("z", noop, after="y")
    with pytest.raises(
        ConfigurationError, match="has a cycle: x waits for z waits for y waits for x"
    ):
        _ = cycle.graph
    itself = define("g-itself", workflow_names)
    with pytest.raises(ConfigurationError, match="a waits for a"):
        itself.step("a", noop, after=["a"])


def test_the_system_checks_report_a_bad_graph(workflow_names):
    define("g-checked", workflow_names).step("a", noop, after="b").step("b", noop, after="a")
    errors = [m for m in check_workflows() if "g-checked" in m.msg]
    assert [m.id for m in errors] == ["salvador.E040"]
    assert "cycle" in errors[0].msg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"when": "yes"}, "when must be callable"),
        ({"after": 3}, "after must be a step name or a list of step names"),
        ({"after": ["a", 3]}, "after must be a step name or a list"),
        ({"after_any": "a,b"}, None),  # one name: fine (a step named "a,b" must exist)
        ({"after": ["a", "a"]}, "after names a step twice"),
    ],
)
def test_bad_dependencies_or_conditions_are_refused_when_the_step_is_added(
    kwargs, message, workflow_names
):
    workflow = define("g-bad", workflow_names).step("a", noop)
    if message is None:
        workflow.step("b", noop, **kwargs)
        with pytest.raises(ConfigurationError, match="'a,b'"):
            _ = workflow.graph
        return
    with pytest.raises(ConfigurationError, match=message):
        workflow.step("b", noop, **kwargs)
    assert [s.name for s in workflow.steps] == ["a"]  # nothing added
