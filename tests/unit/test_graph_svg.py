"""The drawing of a workflow's graph: boxes by layer, one arrow per dependency, escaping."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string

from salvador_django import Workflow
from salvador_django.admin.graph_svg import (
    BOX_HEIGHT,
    BOX_WIDTH,
    COLUMN_GAP,
    MARGIN,
    ROW_GAP,
    layout,
)
from salvador_django.exceptions import ConfigurationError


def noop(task):
    return None


def wants_insurance(task):
    return False


def release(task):
    return None


def booking(workflow_names) -> Workflow:
    """flight, hotel and car at once; charge joins them; insurance if asked; notify after
    any of insurance and charge."""
    workflow_names.append("svg-booking")
    workflow = Workflow("svg-booking")
    for name in ("flight", "hotel", "car"):
        workflow.step(name, noop, after=[], compensate=release)
    workflow.step("charge", noop, after=["flight", "hotel", "car"])
    workflow.step("insurance", noop, when=wants_insurance)
    workflow.step("notify", noop, after=[], after_any=["insurance", "charge"])
    return workflow


def test_each_layer_is_a_centred_row_in_definition_order(workflow_names):
    drawing = layout(booking(workflow_names))
    assert drawing is not None
    boxes = {box.name: box for box in drawing.boxes}
    assert [box.name for box in drawing.boxes] == [
        "flight", "hotel", "car", "charge", "insurance", "notify",
    ]  # fmt: skip
    assert drawing.width == 2 * MARGIN + 3 * BOX_WIDTH + 2 * COLUMN_GAP
    assert drawing.height == 2 * MARGIN + 4 * BOX_HEIGHT + 3 * ROW_GAP
    assert [box.layer for box in drawing.boxes] == [0, 0, 0, 1, 2, 3]
    assert [boxes[n].x for n in ("flight", "hotel", "car")] == [
        MARGIN,
        MARGIN + BOX_WIDTH + COLUMN_GAP,
        MARGIN + 2 * (BOX_WIDTH + COLUMN_GAP),
    ]
    assert {boxes[n].y for n in ("flight", "hotel", "car")} == {MARGIN}
    assert boxes["charge"].x == boxes["hotel"].x  # a row of one is centred
    assert boxes["charge"].y == MARGIN + BOX_HEIGHT + ROW_GAP
    assert boxes["notify"].y == MARGIN + 3 * (BOX_HEIGHT + ROW_GAP)
    assert [box.number for box in drawing.boxes] == [1, 2, 3, 4, 5, 6]
    assert boxes["charge"].label == "4 · charge"


def test_one_arrow_per_dependency_dashed_for_after_any(workflow_names):
    drawing = layout(booking(workflow_names))
    assert drawing is not None
    arrows = [(a.source, a.target, a.after_any) for a in drawing.arrows]
    assert arrows == [
        ("flight", "charge", False),
        ("hotel", "charge", False),
        ("car", "charge", False),
        ("charge", "insurance", False),
        ("insurance", "notify", True),
        ("charge", "notify", True),
    ]
    boxes = {box.name: box for box in drawing.boxes}
    flight, hotel, car, charge = (boxes[n] for n in ("flight", "hotel", "car", "charge"))
    ends = [arrow.path.rsplit(",", 1)[1].split() for arrow in drawing.arrows[:3]]
    # the three arrows reaching charge spread along its top, in the order of their sources
    assert ends == [
        [f"{charge.x + BOX_WIDTH * k / 4:.1f}", f"{charge.y - 2:.1f}"] for k in (1, 2, 3)
    ]
    # flight has one arrow: from the middle of its bottom
    assert drawing.arrows[0].path.startswith(f"M {flight.center_x:.1f} {flight.bottom:.1f} ")
    # charge has two, to insurance (right below it) and notify (also below it): both
    # leave from its bottom, apart
    leaving = {a.path.split()[1] for a in drawing.arrows if a.source == "charge"}
    assert leaving == {f"{charge.x + BOX_WIDTH / 3:.1f}", f"{charge.x + BOX_WIDTH * 2 / 3:.1f}"}
    assert hotel.center_x == charge.center_x
    assert car.x > charge.x


def test_conditions_and_compensations_are_marked(workflow_names):
    drawing = layout(booking(workflow_names))
    assert drawing is not None
    boxes = {box.name: box for box in drawing.boxes}
    assert boxes["insurance"].conditional
    assert boxes["insurance"].note == "if wants_insurance"
    assert boxes["insurance"].title == (
        f"insurance\nafter: charge; when: {__name__}.wants_insurance"
    )
    assert boxes["flight"].compensated
    assert boxes["flight"].note == "↩ release"
    assert boxes["flight"].title == f"flight\nroot\nundo: {__name__}.release"
    assert not boxes["charge"].conditional
    assert not boxes["charge"].compensated
    assert boxes["charge"].note == ""


def test_a_straight_line_is_a_column(workflow_names):
    workflow_names.append("svg-line")
    workflow = Workflow("svg-line").step("a", noop).step("b", noop).step("c", noop)
    drawing = layout(workflow)
    assert drawing is not None
    assert {box.x for box in drawing.boxes} == {MARGIN}
    assert [(a.source, a.target) for a in drawing.arrows] == [("a", "b"), ("b", "c")]
    assert drawing.width == 2 * MARGIN + BOX_WIDTH


def test_no_steps_no_drawing_and_a_bad_graph_raises(workflow_names):
    workflow_names.extend(["svg-empty", "svg-cycle"])
    assert layout(Workflow("svg-empty")) is None
    cycle = Workflow("svg-cycle").step("a", noop, after="b").step("b", noop)
    with pytest.raises(ConfigurationError, match="has a cycle"):
        layout(cycle)


def test_a_long_name_is_shortened_in_its_box_and_whole_in_its_tooltip(workflow_names):
    workflow_names.append("svg-long")
    name = "reserve-the-inventory-in-every-warehouse"
    drawing = layout(Workflow("svg-long").step(name, noop))
    assert drawing is not None
    (box,) = drawing.boxes
    assert box.label == "1 · reserve-the-invento…"
    assert box.title.startswith(name)


def test_the_svg_escapes_step_names(workflow_names):
    workflow_names.append("svg-escape")
    workflow = Workflow("svg-escape").step("<script>alert(1)</script>", noop)
    workflow.step('"quoted" & <b>', noop, after=[], after_any=["<script>alert(1)</script>"])
    drawing = layout(workflow)
    html = render_to_string("admin/salvador/workflow_graph.html", {"drawing": drawing})
    assert "<script>" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'data-step="&quot;quoted&quot; &amp; &lt;b&gt;"' in html
    assert html.count('class="salvador-arrow salvador-arrow-any"') == 1
    assert len(re.findall(r'<g class="salvador-step', html)) == 2
