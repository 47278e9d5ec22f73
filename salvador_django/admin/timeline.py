"""The geometry of a task's timeline: one row per step, one bar per attempt.

The admin draws it as an inline SVG (``admin/salvador/task/timeline.html``), so
retries and the step that broke show as a picture without any JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext as _

from salvador_django.admin.display import beginning, head_of
from salvador_django.admin.durations import format_duration
from salvador_django.admin.runs import number_runs
from salvador_django.models import StepRun
from salvador_django.status import StepRunStatus

LABEL_WIDTH = 200
CHART_WIDTH = 600
ROW_HEIGHT = 26
BAR_HEIGHT = 16
AXIS_HEIGHT = 22
MIN_BAR_WIDTH = 3.0


@dataclass(frozen=True)
class Bar:
    """One attempt of a step, placed on the time axis."""

    x: float
    width: float
    status: str
    title: str


@dataclass(frozen=True)
class Row:
    """One step and its attempts."""

    y: float
    label: str
    bars: list[Bar]
    failed: bool  # its latest attempt (in time) failed

    @property
    def bar_y(self) -> float:
        return self.y + (ROW_HEIGHT - BAR_HEIGHT) / 2

    @property
    def text_y(self) -> float:
        return self.y + ROW_HEIGHT / 2


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    rows: list[Row]
    ticks: list[Tick]
    width: int
    height: int
    label_width: int
    bar_height: int
    axis_y: float


def build_timeline(runs: Sequence[StepRun]) -> Timeline | None:
    """Lay out ``runs`` (any order) on one time axis; None when there are none."""
    if not runs:
        return None
    start = min(run.started_at for run in runs)
    end = max(run.finished_at for run in runs)
    span = max((end - start).total_seconds(), 1e-3)

    def x_of(moment: datetime) -> float:
        return LABEL_WIDTH + (moment - start).total_seconds() / span * CHART_WIDTH

    # Forward steps first, in order; then their compensations, in the order they ran.
    steps = sorted(
        {
            (run.compensation, -run.index if run.compensation else run.index, run.name)
            for run in runs
        }
    )
    numbered = number_runs(runs)  # in the order they happened
    rows = []
    for position, (compensation, key, name) in enumerate(steps):
        index = -key if compensation else key
        attempts = [
            (number, run)
            for number, run in numbered
            if (run.compensation, run.index, run.name) == (compensation, index, name)
        ]
        bars = [
            Bar(
                x=x_of(run.started_at),
                width=max(x_of(run.finished_at) - x_of(run.started_at), MIN_BAR_WIDTH),
                status="compensation"
                if compensation and run.status == "completed"
                else str(run.status),
                title=_bar_title(name, number, run),
            )
            for number, run in attempts
        ]
        latest = attempts[-1][1]  # its colour: how the step last ended, not its top attempt
        rows.append(
            Row(
                y=position * ROW_HEIGHT,
                label=f"↩ {index + 1} · {name}" if compensation else f"{index + 1} · {name}",
                bars=bars,
                failed=latest.status == StepRunStatus.FAILED,
            )
        )
    axis_y = len(rows) * ROW_HEIGHT
    ticks = [
        Tick(x=LABEL_WIDTH + CHART_WIDTH * fraction, label=format_duration(span * fraction))
        for fraction in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    return Timeline(
        rows=rows,
        ticks=ticks,
        width=LABEL_WIDTH + CHART_WIDTH + 40,
        height=int(axis_y + AXIS_HEIGHT),
        label_width=LABEL_WIDTH,
        bar_height=BAR_HEIGHT,
        axis_y=axis_y,
    )


def _bar_title(name: str, number: int, run: StepRun) -> str:
    """E.g. "charge · run 2 · attempt 1 · Completed · 850 ms" (run 1 goes unsaid)."""
    values = {
        "name": name,
        "run": number,
        "attempt": run.attempt,
        "status": run.get_status_display(),
        "duration": format_duration(run.duration),
    }
    if number > 1:
        title = _("%(name)s · run %(run)d · attempt %(attempt)d · %(status)s · %(duration)s")
    else:
        title = _("%(name)s · attempt %(attempt)d · %(status)s · %(duration)s")
    error = head_of(run, "error")
    return title % values + (f"\n{beginning(error)}" if error else "")
