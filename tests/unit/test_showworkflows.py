"""``manage.py showworkflows``: steps, what each waits for, layers; unknown and bad graphs."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from salvador_django import Workflow


def noop(task):
    return None


def wants_insurance(task):
    return True


def undo(task):
    return None


def show(*names: str) -> str:
    out = StringIO()
    call_command("showworkflows", *names, stdout=out)
    return out.getvalue()


def test_a_straight_line_prints_its_steps_in_order(workflow_names):
    workflow_names.append("show-line")
    Workflow("show-line").step("reserve", noop).step("charge", noop, compensate=undo)
    assert show("show-line").splitlines() == [
        "show-line (straight line, 2 steps)",
        "  1. reserve",
        f"  2. charge   undo: {__name__}.undo",
    ]


def test_a_graph_prints_what_each_step_waits_for_and_its_layers(workflow_names):
    workflow_names.append("show-graph")
    workflow = Workflow("show-graph")
    for name in ("flight", "hotel", "car"):
        workflow.step(name, noop, after=[])
    workflow.step("charge", noop, after=["flight", "hotel", "car"])
    workflow.step("insurance", noop, when=wants_insurance)
    workflow.step("notify", noop, after=[], after_any=["insurance", "charge"])
    assert show("show-graph").splitlines() == [
        "show-graph (graph, 6 steps)",
        "  1. flight     root",
        "  2. hotel      root",
        "  3. car        root",
        "  4. charge     after: flight, hotel, car",
        f"  5. insurance  after: charge; when: {__name__}.wants_insurance",
        "  6. notify     after any: insurance, charge",
        "  layers (the steps of a layer can run at the same time):",
        "    1. flight, hotel, car",
        "    2. charge",
        "    3. insurance",
        "    4. notify",
    ]


def test_a_conditional_root_says_both(workflow_names):
    workflow_names.append("show-root-when")
    Workflow("show-root-when").step("maybe", noop, when=wants_insurance)
    assert f"  1. maybe  root; when: {__name__}.wants_insurance" in show("show-root-when")


def test_without_names_every_registered_workflow_is_printed(workflow_names):
    workflow_names.extend(["show-all-a", "show-all-b"])
    Workflow("show-all-a").step("one", noop)
    Workflow("show-all-b")
    text = show()
    assert "show-all-a (straight line, 1 step)\n  1. one\n" in text
    assert "show-all-b: no steps" in text
    assert "three-steps (straight line, 3 steps)" in text  # the test app's


def test_an_unknown_name_lists_the_registered_workflows(workflow_names):
    workflow_names.append("show-known")
    Workflow("show-known")
    with pytest.raises(CommandError) as raised:
        show("show-known", "nope", "nada")
    message = str(raised.value)
    assert message.startswith("No workflow named 'nope', 'nada' is registered (registered: ")
    assert "show-known" in message


def test_a_bad_graph_prints_its_error_then_the_rest_and_fails(workflow_names):
    workflow_names.extend(["show-cycle", "show-fine"])
    Workflow("show-cycle").step("a", noop, after="b").step("b", noop)
    Workflow("show-fine").step("only", noop)
    out = StringIO()
    with pytest.raises(CommandError, match="The graph of 'show-cycle' is not valid"):
        call_command("showworkflows", "show-cycle", "show-fine", stdout=out)
    text = out.getvalue()
    assert "show-cycle (graph, 2 steps)\n  1. a  after: b\n  2. b  after: a\n" in text
    assert "  error: Workflow 'show-cycle' has a cycle: a waits for b waits for a." in text
    assert "show-fine (straight line, 1 step)" in text  # printed after the bad one
