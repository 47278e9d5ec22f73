"""The geometry of the overview's charts: a workflow's tasks per hour as bars, its step
durations per hour as two lines (p50, p95) on a log scale.

Drawn as inline SVG by ``admin/salvador/activity_chart.html`` and
``durations_chart.html``, without any JavaScript; colours come from the admin's CSS
variables (``admin.css``), so dark mode reads too. Each bar and point has a ``<title>``
(a tooltip, read by screen readers), each chart a title and a description.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import dateformat, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from salvador_django.admin.durations import format_duration
from salvador_django.admin.timeline import Tick  # a label on an axis, as the timeline's
from salvador_django.histogram import percentile
from salvador_django.rollup import HOUR, Counts

SLOT = 12  # the width of an hour
BAR = 9
LEFT = 44  # room for the y axis' labels
RIGHT = 6
TOP = 8
PLOT_HEIGHT = 64
BOTTOM = 18  # room for the hours under the axis
MIN_SEGMENT = 2  # a non-zero count is never thinner than this
TICK_EVERY = 6  # hours between the labels of the x axis


@dataclass(frozen=True)
class Slot:
    """One hour of a workflow: its counts, or None when it is not rolled up yet."""

    hour: datetime
    counts: Counts | None
    live: bool = False  # the hour still open, or one counted live


@dataclass(frozen=True)
class Bar:
    x: float
    title: str
    missing: bool
    completed_y: float = 0.0
    completed_height: float = 0.0
    failed_y: float = 0.0
    failed_height: float = 0.0


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Chart:
    """A drawing: its size, plot area, axis labels and what it shows."""

    title: str
    description: str
    width: int
    height: int
    ticks: list[Tick]
    top_label: str  # the value at the top of the plot
    bottom_label: str  # the value at its bottom
    bars: tuple[Bar, ...] = ()
    p50: tuple[Point, ...] = ()
    p95: tuple[Point, ...] = ()
    left: int = LEFT
    plot_top: int = TOP
    plot_bottom: int = TOP + PLOT_HEIGHT
    bar_width: int = BAR
    slot_width: int = SLOT

    @property
    def plot_height(self) -> int:
        return self.plot_bottom - self.plot_top

    @property
    def plot_right(self) -> int:
        return self.width - RIGHT

    @property
    def label_y(self) -> int:
        return self.plot_bottom + BOTTOM - 4

    @property
    def p50_path(self) -> str:
        return _polyline(self.p50)

    @property
    def p95_path(self) -> str:
        return _polyline(self.p95)


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 3, 4, 5, 6, 8, 10, 15, 20… at least ``value`` (1 at least)."""
    if value <= 1:
        return 1
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return math.ceil(step * power)
    return int(10 * power)  # not reached


def axis_duration(seconds: float) -> str:
    """A power of ten of seconds, short: ``10 ms``, ``1 s``, ``1000 s``."""
    if seconds < 1:
        return _("%(n)s ms") % {"n": f"{seconds * 1000:g}"}
    return _("%(n)s s") % {"n": f"{seconds:g}"}


def hour_label(hour: datetime) -> str:
    """``14:00``, in the current time zone."""
    return dateformat.format(timezone.localtime(hour), "H:i")


def _ticks(slots: Sequence[Slot]) -> list[Tick]:
    return [
        Tick(x=LEFT + index * SLOT, label=hour_label(slot.hour))
        for index, slot in enumerate(slots)
        if index % TICK_EVERY == 0
    ]


def _width(slots: Sequence[Slot]) -> int:
    return LEFT + len(slots) * SLOT + RIGHT


def _hour_span(slot: Slot) -> str:
    return f"{hour_label(slot.hour)}-{hour_label(slot.hour + HOUR)}"


def tasks_chart(workflow: str, slots: Sequence[Slot]) -> Chart:
    """Completed (below) and failed (above) tasks per hour, stacked."""
    known = [slot.counts for slot in slots if slot.counts is not None]
    completed = sum(c.completed for c in known)
    failed = sum(c.failed for c in known)
    top = nice_ceiling(max((c.completed + c.failed for c in known), default=0))
    scale = PLOT_HEIGHT / top
    bottom = TOP + PLOT_HEIGHT
    bars = []
    for index, slot in enumerate(slots):
        x = LEFT + index * SLOT + (SLOT - BAR) / 2
        if slot.counts is None:
            title = _("%(hours)s: not rolled up yet") % {"hours": _hour_span(slot)}
            bars.append(Bar(x=x, title=title, missing=True))
            continue
        done, broke = slot.counts.completed, slot.counts.failed
        done_height = max(done * scale, MIN_SEGMENT) if done else 0.0
        broke_height = max(broke * scale, MIN_SEGMENT) if broke else 0.0
        title = _("%(hours)s: %(completed)d completed, %(failed)d failed") % {
            "hours": _hour_span(slot),
            "completed": done,
            "failed": broke,
        }
        if slot.live:
            title += " " + _("(so far)")
        bars.append(
            Bar(
                x=x,
                title=title,
                missing=False,
                completed_y=bottom - done_height,
                completed_height=done_height,
                failed_y=bottom - done_height - broke_height,
                failed_height=broke_height,
            )
        )
    hours = len(slots)
    return Chart(
        title=_("%(workflow)s: tasks completed and failed per hour") % {"workflow": workflow},
        description=ngettext(
            "In the last %(hours)d hour: %(completed)d completed, %(failed)d failed.",
            "In the last %(hours)d hours: %(completed)d completed, %(failed)d failed.",
            hours,
        )
        % {"hours": hours, "completed": completed, "failed": failed},
        width=_width(slots),
        height=TOP + PLOT_HEIGHT + BOTTOM,
        ticks=_ticks(slots),
        top_label=str(top),
        bottom_label="0",
        bars=tuple(bars),
    )


def durations_chart(workflow: str, slots: Sequence[Slot]) -> Chart | None:
    """The p50 and p95 of the step attempts' durations per hour, on a log scale; None
    when no step attempt ended in these hours."""
    read = [
        (index, slot, percentile(slot.counts.durations, 50), percentile(slot.counts.durations, 95))
        for index, slot in enumerate(slots)
        if slot.counts is not None and slot.counts.durations
    ]
    if not read:
        return None
    values = [value for _i, _s, p50, p95 in read for value in (p50, p95) if value]
    low = 10 ** math.floor(math.log10(min(values)))
    high = 10 ** math.ceil(math.log10(max(values)))
    if high <= low:
        high = low * 10
    span = math.log10(high) - math.log10(low)

    def y(value: float) -> float:
        return TOP + PLOT_HEIGHT * (1 - (math.log10(value) - math.log10(low)) / span)

    p50s: list[Point] = []
    p95s: list[Point] = []
    for index, slot, p50, p95 in read:
        x = LEFT + index * SLOT + SLOT / 2
        attempts = slot.counts.step_attempts if slot.counts else 0
        for points, value, name in ((p50s, p50, "p50"), (p95s, p95, "p95")):
            if value is None:
                continue
            title = _("%(hours)s: %(name)s %(duration)s of %(attempts)d step attempts") % {
                "hours": _hour_span(slot),
                "name": name,
                "duration": format_duration(value),
                "attempts": attempts,
            }
            points.append(Point(x=x, y=y(value), title=title))
    return Chart(
        title=_("%(workflow)s: step durations per hour, p50 and p95") % {"workflow": workflow},
        description=_("Log scale from %(low)s to %(high)s.")
        % {"low": axis_duration(low), "high": axis_duration(high)},
        width=_width(slots),
        height=TOP + PLOT_HEIGHT + BOTTOM,
        ticks=_ticks(slots),
        top_label=axis_duration(high),
        bottom_label=axis_duration(low),
        p50=tuple(p50s),
        p95=tuple(p95s),
    )


def _polyline(points: Sequence[Point]) -> str:
    return " ".join(f"{point.x:.1f},{point.y:.1f}" for point in points)
