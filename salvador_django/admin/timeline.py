"""The geometry of a task's timeline: one row per step, one bar per attempt and per wait.

Steps of a graph run at the same time: their bars overlap on their rows, and the
stretches where two or more ran at once are shaded behind them. Bars of one row that
overlap in time (a wait and an attempt) go on lanes of their own within the row.

The admin draws it as an inline SVG (``admin/salvador/task/timeline.html``), so
retries, waits and the step that broke show as a picture without any JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from salvador_django.admin.display import beginning, head_of
from salvador_django.admin.durations import format_duration
from salvador_django.admin.runs import number_runs
from salvador_django.models import StepRun, Wait
from salvador_django.status import StepRunStatus, WaitKind

LABEL_WIDTH = 200
CHART_WIDTH = 600
ROW_HEIGHT = 26
BAR_HEIGHT = 16
AXIS_HEIGHT = 22
MIN_BAR_WIDTH = 3.0
SKIPPED_WIDTH = 6.0  # a skipped step's bar (it took no time)
LANE_HEIGHT = BAR_HEIGHT + 4  # each lane of a row past its first
UNKNOWN_INDEX = 10**9  # a step that waited, of a workflow no longer registered


@dataclass(frozen=True)
class Bar:
    """One attempt of a step, placed on the time axis."""

    x: float
    width: float
    status: str
    title: str
    y: float = 0.0  # set once its row and lane are known


@dataclass(frozen=True)
class Row:
    """One step and its attempts."""

    y: float
    label: str
    bars: list[Bar]
    failed: bool  # its latest attempt (in time) failed
    lanes: int = 1
    skipped: bool = False  # its latest run was skipped (its condition was false)

    @property
    def height(self) -> float:
        return ROW_HEIGHT + (self.lanes - 1) * LANE_HEIGHT

    @property
    def bar_y(self) -> float:
        """The top of the bars of its first lane."""
        return self.y + (ROW_HEIGHT - BAR_HEIGHT) / 2

    @property
    def text_y(self) -> float:
        return self.y + self.height / 2


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Overlap:
    """A stretch of time when ``count`` steps ran at once, shaded behind the rows."""

    x: float
    width: float
    count: int


@dataclass(frozen=True)
class Timeline:
    rows: list[Row]
    ticks: list[Tick]
    width: int
    height: int
    label_width: int
    bar_height: int
    axis_y: float
    overlaps: list[Overlap]

    @property
    def parallel(self) -> int:
        """The most steps that ran at the same time (1 for a straight line)."""
        return max((overlap.count for overlap in self.overlaps), default=1)


def assign_lanes(spans: Sequence[tuple[datetime, datetime]]) -> list[int]:
    """The lane of each ``(start, end)`` span, from 0: spans that overlap in time get
    different lanes, each as low as it can be (greedy, by start time, which takes the
    fewest lanes). A span that starts when another ends may share its lane."""
    lanes = [0] * len(spans)
    busy_until: list[datetime] = []  # by lane: the end of its latest span
    for i in sorted(range(len(spans)), key=lambda i: spans[i][0]):
        start, end = spans[i]
        free = [lane for lane, until in enumerate(busy_until) if until <= start]
        lane = free[0] if free else len(busy_until)
        if lane == len(busy_until):
            busy_until.append(end)
        busy_until[lane] = max(end, start)
        lanes[i] = lane
    return lanes


def overlaps_of(spans: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime, int]]:
    """The stretches of time when two or more ``spans`` overlap, and how many do."""
    # At one moment, spans that end go before those that begin: touching is not overlapping.
    events = sorted([(start, 1) for start, _end in spans] + [(end, -1) for _start, end in spans])
    found: list[tuple[datetime, datetime, int]] = []
    active, previous = 0, None
    for moment, change in events:
        if previous is not None and moment > previous and active > 1:
            if found and found[-1][1] == previous and found[-1][2] == active:
                found[-1] = (found[-1][0], moment, active)
            else:
                found.append((previous, moment, active))
        active += change
        previous = moment
    return found


def build_timeline(
    runs: Sequence[StepRun],
    waits: Sequence[Wait] = (),
    *,
    step_index: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> Timeline | None:
    """Lay out ``runs`` (any order) and ``waits`` on one time axis; None when there are none.

    A wait is a bar in its step's row, from when it began to when it ended (an open
    one to ``now``). ``step_index`` numbers the steps that waited but have no attempt
    yet (a step's attempt is recorded when it ends, not when it stops to wait).
    """
    if not runs and not waits:
        return None
    now = now or timezone.now()
    ends = {id(wait): max(wait.finished_at or now, wait.started_at) for wait in waits}
    start = min([run.started_at for run in runs] + [wait.started_at for wait in waits])
    end = max([run.finished_at for run in runs] + list(ends.values()))
    span = max((end - start).total_seconds(), 1e-3)

    def x_of(moment: datetime) -> float:
        return LABEL_WIDTH + (moment - start).total_seconds() / span * CHART_WIDTH

    def bar(began: datetime, ended: datetime, status: str, title: str) -> Bar:
        shortest = SKIPPED_WIDTH if status == StepRunStatus.SKIPPED else MIN_BAR_WIDTH
        width = max(x_of(ended) - x_of(began), shortest)
        return Bar(x=x_of(began), width=width, status=status, title=title)

    index_of = {run.name: run.index for run in runs if not run.compensation}
    index_of.update(step_index or {})
    # Forward steps first, in order; then their compensations, in the order they ran.
    steps = sorted(
        {
            (run.compensation, -run.index if run.compensation else run.index, run.name)
            for run in runs
        }
        | {(False, index_of.get(wait.step_name, UNKNOWN_INDEX), wait.step_name) for wait in waits}
    )
    numbered = number_runs(runs)  # in the order they happened
    rows = []
    top = 0.0
    for compensation, key, name in steps:
        index = -key if compensation else key
        attempts = [
            (number, run)
            for number, run in numbered
            if (run.compensation, run.index, run.name) == (compensation, index, name)
        ]
        waited = [] if compensation else [wait for wait in waits if wait.step_name == name]
        spans = [(wait.started_at, ends[id(wait)]) for wait in waited] + [
            (run.started_at, run.finished_at) for _number, run in attempts
        ]
        bars = [
            bar(
                wait.started_at,
                ends[id(wait)],
                "wait" if wait.finished_at else "wait-open",
                _wait_title(wait, ends[id(wait)]),
            )
            for wait in waited
        ] + [
            bar(
                run.started_at,
                run.finished_at,
                "compensation" if compensation and run.status == "completed" else str(run.status),
                _bar_title(name, number, run),
            )
            for number, run in attempts
        ]
        lanes = assign_lanes(spans)
        first_y = top + (ROW_HEIGHT - BAR_HEIGHT) / 2
        bars = [
            replace(item, y=first_y + lane * LANE_HEIGHT)
            for item, lane in zip(bars, lanes, strict=True)
        ]
        # Its colour: how the step last ended, not its top attempt.
        latest = attempts[-1][1] if attempts else None
        if compensation:
            label = f"↩ {index + 1} · {name}"
        else:
            label = f"{index + 1} · {name}" if index != UNKNOWN_INDEX else f"? · {name}"
        row = Row(
            y=top,
            label=label,
            bars=bars,
            failed=latest is not None and latest.status == StepRunStatus.FAILED,
            lanes=max(lanes, default=0) + 1,
            skipped=latest is not None and latest.status == StepRunStatus.SKIPPED,
        )
        rows.append(row)
        top += row.height
    axis_y = top
    ran = [(r.started_at, r.finished_at) for r in runs if r.status != StepRunStatus.SKIPPED]
    overlaps = [
        Overlap(x=x_of(begin), width=x_of(end) - x_of(begin), count=count)
        for begin, end, count in overlaps_of(ran)
    ]
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
        overlaps=overlaps,
    )


def _wait_title(wait: Wait, ended: datetime) -> str:
    """E.g. "decide · wait 1 · signal 'approval' · Received · 2 h 5 min"."""
    values = {
        "name": wait.step_name,
        "position": wait.position,
        "what": _("signal '%(name)s'") % {"name": wait.name}
        if wait.kind == WaitKind.SIGNAL
        else _("a timer"),
        "outcome": wait.get_outcome_display(),
        "duration": format_duration(ended - wait.started_at),
    }
    if wait.finished_at is None:
        return _("%(name)s · wait %(position)d · %(what)s · %(outcome)s · %(duration)s so far") % (
            values
        )
    return _("%(name)s · wait %(position)d · %(what)s · %(outcome)s · %(duration)s") % values


def _bar_title(name: str, number: int, run: StepRun) -> str:
    """E.g. "charge · run 2 · attempt 1 · Completed · 850 ms" (run 1 goes unsaid)."""
    if run.status == StepRunStatus.SKIPPED:
        return _("%(name)s · Skipped: its condition was false") % {"name": name}
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
