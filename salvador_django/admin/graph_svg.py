"""The geometry of a workflow's drawing: a box per step, an arrow per dependency.

Steps are laid out by :meth:`Graph.layers() <salvador_django.graph.Graph.layers>`: a
row per layer (the steps that can run at the same time), top to bottom, each row
centred, steps in definition order. The admin draws it as an inline SVG
(``admin/salvador/workflow_graph.html``), without any JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from salvador_django.admin.display import shorten
from salvador_django.outline import callable_name, undo, waits_for

if TYPE_CHECKING:
    from salvador_django.definitions import Workflow

BOX_WIDTH = 180
BOX_HEIGHT = 44
COLUMN_GAP = 24  # between the boxes of a row
ROW_GAP = 48  # between rows: room for the arrows
MARGIN = 12
NAME_LENGTH = 24  # the characters of a name a box holds
NOTE_LENGTH = 28  # those of the small line under it


@dataclass(frozen=True)
class Box:
    """One step, placed."""

    name: str
    number: int  # in definition order, from 1
    layer: int  # from 0
    x: float
    y: float
    label: str  # "2 · charge", shortened to fit
    note: str  # the small line under it: its condition, its undo
    title: str  # the tooltip: the whole name, what it waits for, its undo
    conditional: bool
    compensated: bool

    @property
    def center_x(self) -> float:
        return self.x + BOX_WIDTH / 2

    @property
    def bottom(self) -> float:
        return self.y + BOX_HEIGHT

    @property
    def name_y(self) -> float:
        return self.y + (18 if self.note else BOX_HEIGHT / 2 + 4)

    @property
    def note_y(self) -> float:
        return self.y + 34

    @property
    def marker(self) -> str:
        """A diamond on the box's left edge: the step has a condition (``when``)."""
        return f"M {self.x - 7:.1f} {self.y + 14:.1f} l 7 -7 l 7 7 l -7 7 z"


@dataclass(frozen=True)
class Arrow:
    """A step waiting for another: from the one it waits for to it."""

    source: str
    target: str
    after_any: bool  # drawn dashed
    path: str  # SVG path data


@dataclass(frozen=True)
class Drawing:
    boxes: list[Box]
    arrows: list[Arrow]
    width: int
    height: int
    box_width: int = BOX_WIDTH
    box_height: int = BOX_HEIGHT


def layout(workflow: Workflow) -> Drawing | None:
    """The drawing of ``workflow``'s graph; None when it has no steps.

    Raises :class:`~salvador_django.exceptions.ConfigurationError` if the graph is not
    valid (an unknown name, a cycle).
    """
    graph = workflow.graph
    layers = graph.layers()
    if not layers:
        return None
    widest = max(len(row) for row in layers)
    width = 2 * MARGIN + widest * BOX_WIDTH + (widest - 1) * COLUMN_GAP
    height = 2 * MARGIN + len(layers) * BOX_HEIGHT + (len(layers) - 1) * ROW_GAP
    placed: dict[str, tuple[int, float, float]] = {}
    for depth, row in enumerate(layers):
        row_width = len(row) * BOX_WIDTH + (len(row) - 1) * COLUMN_GAP
        left = (width - row_width) / 2
        for position, name in enumerate(row):
            x = left + position * (BOX_WIDTH + COLUMN_GAP)
            placed[name] = (depth, x, MARGIN + depth * (BOX_HEIGHT + ROW_GAP))
    boxes = []
    for number, step in enumerate(workflow.steps, 1):
        depth, x, y = placed[step.name]
        notes = []
        if step.when is not None:
            notes.append(f"if {_short(callable_name(step.when))}")
        if step.compensate is not None:
            notes.append(f"↩ {_short(callable_name(step.compensate))}")
        boxes.append(
            Box(
                name=step.name,
                number=number,
                layer=depth,
                x=x,
                y=y,
                label=shorten(f"{number} · {step.name}", NAME_LENGTH),
                note=shorten(" · ".join(notes), NOTE_LENGTH),
                title="\n".join(part for part in (step.name, waits_for(step), undo(step)) if part),
                conditional=step.when is not None,
                compensated=step.compensate is not None,
            )
        )
    by_name = {box.name: box for box in boxes}
    pairs = [
        (by_name[dependency], box, dependency not in node.after)
        for box, node in zip(boxes, graph.nodes, strict=True)
        for dependency in node.dependencies
    ]
    # Several arrows leaving or reaching one box spread along its edge, in the order of
    # the boxes at their other ends, so that they do not meet in one point.
    leaving = _ports([(source.name, target.center_x) for source, target, _any in pairs])
    reaching = _ports([(target.name, source.center_x) for source, target, _any in pairs])
    arrows = [
        _arrow(source, target, after_any, leaving[i], reaching[i])
        for i, (source, target, after_any) in enumerate(pairs)
    ]
    return Drawing(boxes=boxes, arrows=arrows, width=int(width), height=int(height))


def _ports(ends: list[tuple[str, float]]) -> list[float]:
    """For each arrow's ``(box, x of its other end)``: where on the box's edge it goes,
    as a fraction of the box's width."""
    by_box: dict[str, list[int]] = {}
    for i, (box, _x) in enumerate(ends):
        by_box.setdefault(box, []).append(i)
    fractions = [0.5] * len(ends)
    for indices in by_box.values():
        ordered = sorted(indices, key=lambda i: (ends[i][1], i))
        for position, i in enumerate(ordered, 1):
            fractions[i] = position / (len(ordered) + 1)
    return fractions


def _short(qualified: str) -> str:
    """A callable's name without its module: ``app.workflows.wants`` -> ``wants``."""
    return qualified.rpartition(".")[2] or qualified


def _arrow(source: Box, target: Box, after_any: bool, leaves: float, reaches: float) -> Arrow:
    """From the bottom of ``source`` to the top of ``target`` (at those fractions of their
    width), a curve that leaves and arrives vertically (an arrow that skips rows may
    cross a box between them)."""
    x1, y1 = source.x + leaves * BOX_WIDTH, source.bottom
    x2, y2 = target.x + reaches * BOX_WIDTH, target.y - 2  # the arrowhead's tip above it
    bend = (y2 - y1) / 2
    path = (
        f"M {x1:.1f} {y1:.1f} "
        f"C {x1:.1f} {y1 + bend:.1f}, {x2:.1f} {y2 - bend:.1f}, {x2:.1f} {y2:.1f}"
    )
    return Arrow(source=source.name, target=target.name, after_any=after_any, path=path)
