"""The admin's pure parts: durations and moments for people, bounded error text, runs,
the timeline's geometry (attempts and waits), what a task waits for, pause and resume."""

from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from salvador_django.admin.display import (
    HEAD_LENGTH,
    beginning,
    bounded_pre,
    bounded_pre_of,
    first_line,
    head_of,
)
from salvador_django.admin.durations import format_duration, format_moment
from salvador_django.admin.runs import number_runs
from salvador_django.admin.timeline import CHART_WIDTH, LABEL_WIDTH, MIN_BAR_WIDTH, build_timeline
from salvador_django.admin.triage import PAUSE, RESUME
from salvador_django.admin.waits import VALUE_LENGTH, Listing, json_head_of
from salvador_django.admin.waits import waiting_for as waiting_for_
from salvador_django.models import Signal, StepRun, Task, Wait
from salvador_django.status import StepRunStatus, TaskStatus, WaitKind, WaitOutcome


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


def test_a_duration_that_rounds_to_a_second_says_seconds():
    assert format_duration(0.9996) == "1.0 s"


def test_a_moment_shows_its_seconds_and_time_zone():
    html = format_moment(T0 + timedelta(seconds=5.25))
    assert "<span>2026-11-30</span> <span>12:00:05 UTC</span></time>" in html
    assert 'datetime="2026-11-30T12:00:05.250000+00:00"' in html
    assert format_moment(None) is None


def requeued_runs():
    """A step that failed twice, then, after a requeue, completed at its "attempt 1"."""
    return [
        run(1, "charge", 1, 10, 5, StepRunStatus.COMPLETED),  # after the requeue
        run(0, "reserve", 1, 0, 1),
        run(1, "charge", 2, 5, 1, StepRunStatus.FAILED),
        run(1, "charge", 1, 2, 1, StepRunStatus.FAILED),
        run(2, "ship", 1, 16, 1),
    ]


def test_attempts_are_numbered_by_run_in_the_order_they_happened():
    numbered = [(n, r.name, r.attempt) for n, r in number_runs(requeued_runs())]
    assert numbered == [
        (1, "reserve", 1),
        (1, "charge", 1),
        (1, "charge", 2),
        (2, "charge", 1),
        (2, "ship", 1),
    ]


def test_a_restart_from_the_first_step_begins_a_run():
    runs = [run(0, "reserve", 1, 0, 1), run(1, "charge", 1, 2, 1), run(0, "reserve", 1, 5, 1)]
    assert [n for n, _run in number_runs(runs)] == [1, 1, 2]


def test_the_label_follows_the_latest_attempt_not_the_highest_attempt_number():
    timeline = build_timeline(requeued_runs())
    assert timeline is not None
    charge = timeline.rows[1]
    assert charge.label == "2 · charge"
    assert not charge.failed  # it failed, then completed after the requeue
    assert [bar.status for bar in charge.bars] == ["failed", "failed", "completed"]
    assert charge.bars[2].title.startswith("charge · run 2 · attempt 1 · Completed")
    assert charge.bars[0].title.startswith("charge · attempt 1 · Failed")


def test_a_step_that_completed_then_failed_after_a_requeue_is_failed():
    runs = [run(0, "charge", 1, 0, 1), run(0, "charge", 1, 5, 1, StepRunStatus.FAILED)]
    timeline = build_timeline(runs)
    assert timeline is not None
    assert timeline.rows[0].failed


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("  KeyError: 'sku'\n  detail", "KeyError: 'sku'"),
        ("windows\r\nline", "windows"),
        ("x" * 100, "x" * 100),
        ("x" * 101, "x" * 99 + "…"),
        ("x" * 100 + "\nrest", "x" * 100),
        ("x" * 2_000_000, "x" * 99 + "…"),
        ("", ""),
    ],
)
def test_first_line_is_bounded(text, line):
    assert first_line(text) == line


def test_the_beginning_of_an_error_is_bounded():
    assert beginning("  a\nb  ") == "a\nb"
    assert beginning("y" * 2_000_000) == "y" * 499 + "…"


def test_a_long_text_on_a_page_shows_its_start_and_counts_the_rest():
    assert bounded_pre("<b>short</b>") == '<pre class="salvador-pre">&lt;b&gt;short&lt;/b&gt;</pre>'
    assert "more character" not in bounded_pre("z" * 10_000)
    html = bounded_pre("<" * 10_000 + "z" * 1_234_567)
    assert html.startswith('<pre class="salvador-pre">' + "&lt;" * 10_000 + "</pre>")
    assert html.endswith('<p class="help salvador-cut">… 1,234,567 more characters</p>')
    assert bounded_pre("z" * 10_001).endswith("… 1 more character</p>")


def test_a_head_read_in_sql_says_when_the_text_goes_on():
    whole = StepRun(error="KeyError: 'sku'")
    assert head_of(whole, "error") == "KeyError: 'sku'"  # read without the annotation
    run = StepRun(error="")
    run.error_head = "e" * HEAD_LENGTH
    assert head_of(run, "error") == "e" * HEAD_LENGTH
    run.error_head = "e" * (HEAD_LENGTH + 1)
    assert head_of(run, "error") == "e" * HEAD_LENGTH + "…"
    assert first_line(head_of(run, "error")) == "e" * 99 + "…"
    run.error_head = "Error: x" + " " * HEAD_LENGTH
    assert beginning(head_of(run, "error")).endswith("…")  # what strip() drops is no end


def test_a_traceback_read_in_part_counts_what_its_page_does_not_show():
    run = StepRun(traceback="")
    run.traceback_head = "t" * 10_001
    run.traceback_length = 2_000_000
    html = bounded_pre_of(run, "traceback")
    assert html.startswith('<pre class="salvador-pre">' + "t" * 10_000 + "</pre>")
    assert html.endswith("… 1,990,000 more characters</p>")
    assert "more character" not in bounded_pre_of(StepRun(traceback="short"), "traceback")


def test_a_timeline_bar_holds_the_beginning_of_a_huge_error():
    failed = run(0, "charge", 1, 0, 1, StepRunStatus.FAILED)
    failed.error = "RuntimeError: " + "x" * 2_000_000
    timeline = build_timeline([failed])
    assert timeline is not None
    title = timeline.rows[0].bars[0].title
    assert title.startswith("charge · attempt 1 · Failed")
    assert title.endswith("\nRuntimeError: " + "x" * 485 + "…")


def wait(position, start, seconds=None, *, step="decide", kind=WaitKind.SIGNAL, name="approval"):
    """A wait of ``step`` begun ``start`` seconds after T0; open unless ``seconds`` is given."""
    begun = T0 + timedelta(seconds=start)
    return Wait(
        step_name=step,
        position=position,
        kind=kind,
        name=name if kind == WaitKind.SIGNAL else "",
        started_at=begun,
        finished_at=None if seconds is None else begun + timedelta(seconds=seconds),
        outcome=WaitOutcome.OPEN if seconds is None else WaitOutcome.RECEIVED,
    )


def test_a_wait_is_a_bar_in_its_step_s_row_before_its_attempt():
    timeline = build_timeline(
        [run(0, "reserve", 1, 0, 10), run(1, "decide", 1, 70, 20)], [wait(1, 10, 60)]
    )
    assert timeline is not None
    assert [row.label for row in timeline.rows] == ["1 · reserve", "2 · decide"]
    waited, attempt = timeline.rows[1].bars
    assert (waited.status, attempt.status) == ("wait", "completed")
    assert waited.x == pytest.approx(LABEL_WIDTH + CHART_WIDTH * 10 / 90)
    assert waited.width == pytest.approx(CHART_WIDTH * 60 / 90)
    assert waited.title == "decide · wait 1 · signal 'approval' · Received · 1 min 0 s"
    assert not timeline.rows[1].failed


def test_an_open_wait_reaches_now_in_a_row_of_its_own_numbered_by_the_workflow():
    now = T0 + timedelta(seconds=100)
    timeline = build_timeline(
        [run(0, "reserve", 1, 0, 10)],
        [wait(1, 10, kind=WaitKind.SLEEP)],
        step_index={"reserve": 0, "decide": 1, "finish": 2},
        now=now,
    )
    assert timeline is not None
    assert [row.label for row in timeline.rows] == ["1 · reserve", "2 · decide"]
    (open_wait,) = timeline.rows[1].bars
    assert open_wait.status == "wait-open"
    assert open_wait.x + open_wait.width == pytest.approx(LABEL_WIDTH + CHART_WIDTH)  # now
    assert open_wait.title == "decide · wait 1 · a timer · Waiting · 1 min 30 s so far"
    assert timeline.ticks[-1].label == "1 min 40 s"


def test_waits_alone_make_a_timeline_and_an_unknown_step_is_unnumbered():
    timeline = build_timeline([], [wait(1, 0, step="gone")], now=T0 + timedelta(seconds=5))
    assert timeline is not None
    assert [row.label for row in timeline.rows] == ["? · gone"]


def test_resume_is_allowed_from_paused_and_from_a_requested_pause_only():
    def task(status, pause_requested_at=None, compensation=""):
        return Task(status=status, pause_requested_at=pause_requested_at, compensation=compensation)

    assert RESUME.allows(task(TaskStatus.PAUSED))
    assert RESUME.allows(task(TaskStatus.RUNNING, pause_requested_at=T0))
    assert not RESUME.allows(task(TaskStatus.RUNNING))
    assert not RESUME.allows(task(TaskStatus.WAITING))
    assert PAUSE.allows(task(TaskStatus.WAITING))
    assert PAUSE.allows(task(TaskStatus.RUNNING))
    assert not PAUSE.allows(task(TaskStatus.PAUSED))
    assert not PAUSE.allows(task(TaskStatus.PENDING, compensation="running"))


def test_a_listing_says_how_many_rows_it_does_not_show():
    rows = [Signal(name="s")] * 50
    assert Listing(rows, 50).note("first") == ""
    assert Listing(rows, 1234).note("first") == "The first 50 of 1,234."
    assert Listing(rows, 10_000, capped=True).note("latest") == "The latest 50 of more than 10,000."


def test_a_json_head_read_in_sql_says_when_it_goes_on():
    signal = Signal(name="s")
    signal.payload_head = None  # SQL NULL: stored from None
    assert json_head_of(signal, "payload") == "null"
    signal.payload_head = '"' + "x" * (VALUE_LENGTH - 1)
    assert json_head_of(signal, "payload") == signal.payload_head
    signal.payload_head = '"' + "x" * VALUE_LENGTH
    assert json_head_of(signal, "payload") == '"' + "x" * (VALUE_LENGTH - 1) + "…"


@pytest.mark.parametrize(
    ("status", "waiting_for", "wake_at", "text"),
    [
        (TaskStatus.WAITING, "approval", None, "signal 'approval' · no timeout"),
        (TaskStatus.WAITING, "approval", T0, "signal 'approval' · until <time"),
        (TaskStatus.WAITING, "", T0, "a timer · until <time"),
        (TaskStatus.PAUSED, "", T0, "its timer does not fire while the task is paused"),
        (TaskStatus.PAUSED, "", None, None),  # paused before it waited
        (TaskStatus.RUNNING, "", None, None),
    ],
)
def test_what_a_task_waits_for(status, waiting_for, wake_at, text):
    task = Task(status=status, waiting_for=waiting_for, wake_at=wake_at)
    described = waiting_for_(task)
    if text is None:
        assert described is None
    else:
        assert described is not None
        assert text in unescape(described)
