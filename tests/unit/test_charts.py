"""The geometry of the overview's charts, and their SVG."""

from __future__ import annotations

from datetime import UTC, datetime

from salvador_django.admin.chart_svg import durations_svg, tasks_svg
from salvador_django.admin.charts import (
    BAR,
    MIN_SEGMENT,
    PLOT_HEIGHT,
    TOP,
    Slot,
    durations_chart,
    nice_ceiling,
    tasks_chart,
)
from salvador_django.histogram import bucket
from salvador_django.rollup import HOUR, Counts

START = datetime(2026, 6, 2, 0, tzinfo=UTC)


def slots(*counts: Counts | None) -> list[Slot]:
    return [Slot(START + n * HOUR, c) for n, c in enumerate(counts)]


def test_the_y_axis_ends_on_a_round_number():
    assert [nice_ceiling(v) for v in (0, 1, 7, 52, 101, 2500, 7001)] == [
        1, 1, 8, 60, 150, 3000, 8000,
    ]  # fmt: skip


def test_bars_stack_failed_on_completed_and_a_missing_hour_is_a_stub():
    chart = tasks_chart(
        "w<b>",
        slots(Counts(completed=30, failed=10), Counts(), None, Counts(completed=199, failed=1)),
    )
    full, empty, missing, tall = chart.bars
    assert chart.top_label == "200"
    scale = PLOT_HEIGHT / 200
    assert full.completed_height == 30 * scale
    assert full.failed_y + full.failed_height == full.completed_y
    assert empty.completed_height == empty.failed_height == 0
    assert missing.missing
    assert "not rolled up yet" in missing.title
    assert tall.completed_height == 199 * scale
    assert tall.failed_height == MIN_SEGMENT  # one in 200: still visible
    assert tall.failed_y >= TOP - MIN_SEGMENT
    svg = str(tasks_svg(chart, "c1"))
    assert "w&lt;b&gt;: tasks completed and failed per hour" in svg  # escaped
    assert svg.count('class="salvador-chart-failed"') == 2
    assert f'width="{BAR}"' in svg
    assert 'aria-labelledby="c1-title c1-desc"' in svg


def test_durations_are_drawn_on_a_log_scale_between_powers_of_ten():
    fast = Counts(step_attempts=10, durations={str(bucket(0.05)): 10})
    slow = Counts(step_attempts=10, durations={str(bucket(0.05)): 5, str(bucket(4.0)): 5})
    chart = durations_chart("w", slots(fast, None, slow))
    assert chart is not None
    assert (chart.bottom_label, chart.top_label) == ("10 ms", "10 s")
    assert len(chart.p50) == len(chart.p95) == 2
    assert chart.p95[1].y < chart.p95[0].y  # slower is higher
    svg = str(durations_svg(chart, "d1"))
    assert svg.count("<circle") == 4
    assert durations_chart("w", slots(Counts(), None)) is None
