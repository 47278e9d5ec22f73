"""The admin's pure parts: durations for people and the timeline's geometry."""

from datetime import UTC, datetime, timedelta

import pytest

from salvador_django.admin.durations import format_duration
from salvador_django.admin.timeline import CHART_WIDTH, LABEL_WIDTH, MIN_BAR_WIDTH, build_timeline
from salvador_django.models import StepRun
from salvador_django.status import StepRunStatus


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0004, "0 ms"),
        (0.85, "850 ms"),
        (1.24, "1.2 s"),
        (42.9, "42 s"),
        (184, "3 min 4 s"),
        (7500, "2 h 5 min"),
        (2 * 86400 + 3 * 3600, "2 d 3 h"),
        (-5, "0 ms"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert format_duration(timedelta(seconds=seconds)) == text


T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def run(index, name, attempt, start, seconds, status=StepRunStatus.COMPLETED):
    begun = T0 + timedelta(seconds=start)
    return StepRun(
        index=index,
        name=name,
        attempt=attempt,
        status=status,
        started_at=begun,
        finished_at=begun + timedelta(seconds=seconds),
        error="boom" if status == StepRunStatus.FAILED else "",
        compensation=False,
    )


def test_no_runs_no_timeline():
    assert build_timeline([]) is None


def test_one_row_per_step_one_bar_per_attempt_on_a_shared_axis():
    timeline = build_timeline(
        [
            run(1, "charge", 2, 60, 30, StepRunStatus.FAILED),
            run(0, "reserve", 1, 0, 10),
            run(1, "charge", 1, 20, 10, StepRunStatus.FAILED),
        ]
    )
    assert timeline is not None
    assert [row.label for row in timeline.rows] == ["1 · reserve", "2 · charge"]
    reserve, charge = timeline.rows
    assert not reserve.failed
    assert charge.failed
    assert [bar.x for bar in charge.bars] == pytest.approx(
        [LABEL_WIDTH + CHART_WIDTH * 20 / 90, LABEL_WIDTH + CHART_WIDTH * 60 / 90]
    )
    assert charge.bars[1].width == pytest.approx(CHART_WIDTH * 30 / 90)
    assert charge.bars[0].title.startswith("charge · attempt 1 · Failed · 10 s")
    assert charge.bars[0].title.endswith("\nboom")
    assert [tick.label for tick in timeline.ticks] == [
        "0 ms",
        "22 s",
        "45 s",
        "1 min 7 s",
        "1 min 30 s",
    ]


def test_an_instant_attempt_is_still_visible():
    timeline = build_timeline([run(0, "noop", 1, 0, 0), run(1, "slow", 1, 0, 100)])
    assert timeline is not None
    assert timeline.rows[0].bars[0].width == MIN_BAR_WIDTH
