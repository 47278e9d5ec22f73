"""The timeline of a graph task: steps that ran at the same time, lanes within a row,
skipped steps; a straight-line task's timeline as before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from salvador_django.admin.timeline import (
    BAR_HEIGHT,
    CHART_WIDTH,
    LABEL_WIDTH,
    LANE_HEIGHT,
    ROW_HEIGHT,
    SKIPPED_WIDTH,
    assign_lanes,
    build_timeline,
    overlaps_of,
)
from salvador_django.status import StepRunStatus, WaitKind
from tests.unit.test_admin_parts import T0, run, wait


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def spans(*pairs: tuple[float, float]):
    return [(at(start), at(end)) for start, end in pairs]


def test_overlapping_spans_get_different_lanes_each_as_low_as_it_can():
    # 0-4 and 1-3 overlap; 3-5 starts when 1-3 ends: it takes that lane again;
    # 4-6 starts when 0-4 ends; 2-7 overlaps them all at its start.
    lanes = assign_lanes(spans((1, 3), (0, 4), (3, 5), (4, 6), (2, 7)))
    assert lanes == [1, 0, 1, 0, 2]


def test_spans_one_after_another_share_one_lane():
    assert assign_lanes(spans((0, 1), (1, 2), (2, 3))) == [0, 0, 0]
    assert assign_lanes([]) == []


def test_overlaps_are_the_stretches_when_two_or_more_spans_ran():
    found = overlaps_of(spans((0, 4), (0, 6), (0, 2), (8, 9)))
    assert found == [(at(0), at(2), 3), (at(2), at(4), 2)]
    assert overlaps_of(spans((0, 1), (1, 2))) == []  # touching is not overlapping


def test_parallel_steps_have_their_own_rows_and_their_overlap_is_shaded():
    timeline = build_timeline(
        [
            run(0, "flight", 1, 0, 4),
            run(1, "hotel", 1, 0, 6),
            run(2, "car", 1, 1, 2),
            run(3, "charge", 1, 6, 3),
        ]
    )
    assert timeline is not None
    assert [row.label for row in timeline.rows] == [
        "1 · flight", "2 · hotel", "3 · car", "4 · charge",
    ]  # fmt: skip
    assert [row.y for row in timeline.rows] == [0, ROW_HEIGHT, 2 * ROW_HEIGHT, 3 * ROW_HEIGHT]
    assert timeline.parallel == 3
    per_second = CHART_WIDTH / 9
    assert [(o.x, o.width, o.count) for o in timeline.overlaps] == [
        (pytest.approx(LABEL_WIDTH), pytest.approx(per_second), 2),
        (pytest.approx(LABEL_WIDTH + per_second), pytest.approx(2 * per_second), 3),
        (pytest.approx(LABEL_WIDTH + 3 * per_second), pytest.approx(per_second), 2),
    ]


def test_a_straight_line_looks_as_before():
    timeline = build_timeline(
        [run(0, "reserve", 1, 0, 10), run(1, "charge", 1, 10, 5), run(2, "ship", 1, 15, 1)]
    )
    assert timeline is not None
    assert timeline.overlaps == []
    assert timeline.parallel == 1
    assert [row.lanes for row in timeline.rows] == [1, 1, 1]
    assert [row.height for row in timeline.rows] == [ROW_HEIGHT] * 3
    assert timeline.axis_y == 3 * ROW_HEIGHT
    for row in timeline.rows:
        assert {bar.y for bar in row.bars} == {row.bar_y}
        assert row.bar_y == row.y + (ROW_HEIGHT - BAR_HEIGHT) / 2
        assert row.text_y == row.y + ROW_HEIGHT / 2


def test_bars_of_one_row_that_overlap_go_on_lanes_of_their_own():
    # A wait of "decide" that its attempt overlaps: the row takes two lanes, and the
    # rows below it move down.
    timeline = build_timeline(
        [run(0, "reserve", 1, 0, 10), run(1, "decide", 1, 30, 20), run(2, "ship", 1, 50, 1)],
        [wait(1, 10, 30)],
    )
    assert timeline is not None
    _reserve, decide, ship = timeline.rows
    assert decide.lanes == 2
    waited, attempt = decide.bars
    assert (waited.status, attempt.status) == ("wait", "completed")
    assert waited.y == decide.bar_y
    assert attempt.y == decide.bar_y + LANE_HEIGHT
    assert decide.height == ROW_HEIGHT + LANE_HEIGHT
    assert ship.y == decide.y + decide.height
    assert timeline.axis_y == ship.y + ROW_HEIGHT
    assert timeline.parallel == 1  # a wait is not a step running


def test_a_skipped_step_is_a_mark_of_its_own():
    timeline = build_timeline(
        [run(0, "charge", 1, 0, 10), run(1, "insurance", 0, 10, 0, StepRunStatus.SKIPPED)]
    )
    assert timeline is not None
    insurance = timeline.rows[1]
    assert insurance.skipped
    assert not insurance.failed
    (mark,) = insurance.bars
    assert mark.status == "skipped"
    assert mark.width == SKIPPED_WIDTH
    assert mark.title == "insurance · Skipped: its condition was false"
    assert timeline.parallel == 1


def test_an_open_wait_still_reaches_now():
    now = at(100)
    timeline = build_timeline(
        [run(0, "reserve", 1, 0, 10)], [wait(1, 10, kind=WaitKind.SLEEP)], now=now
    )
    assert timeline is not None
    (open_wait,) = timeline.rows[1].bars
    assert open_wait.x + open_wait.width == pytest.approx(LABEL_WIDTH + CHART_WIDTH)
